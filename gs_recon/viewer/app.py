"""A finished run as an interactive, decomposed scene in the browser (viser).

Each object's Gaussians (DC colour baked) and/or mesh sit under their own transform gizmo, shown for the
selected object. The viewer opens at the first training camera; objects are selected by clicking them in the
3D view (or in the panel), which outlines them and shows their name, Gaussian count and box; each has an opacity; hotkeys hide (H), isolate
(I) and show all (A); the background is cut away where it would hide the scene from outside the room; a
button saves the re-composed scene (scene.json "transforms", re-exported splats and glb).

Everything here is in the input's world frame, read from a finished run's exported files.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from ..errors import SceneError
from ..export.splats import read_ply, write_ply, write_splat
from ..geometry import quat_to_rotmat, transform_gaussians
from ..mesh.texture import load_mesh, mesh_file
from ..run.manifest import read_manifest, write_manifest
from .common import (Splats, add_frustum_gui, add_frustums, background_keep, facing_inward, go_to_view,
                     import_viser, open_at_first_view, pick, run_views)

log = logging.getLogger("gs_recon")

HIGHLIGHT = (255, 0, 200)  # the selected object's outline (magenta: rare in scenes)


@dataclass
class ViewObject:
    id: int
    name: str
    splat_file: Optional[Path]
    mesh_file: Optional[Path]
    pivot: np.ndarray  # [3] the object's centre: the gizmo sits here
    box: np.ndarray  # [2, 3] the object's box (scene.json bbox) in the original frame
    gaussians: int = 0
    position: np.ndarray = field(default_factory=lambda: np.zeros(3))  # gizmo pose (world)
    wxyz: np.ndarray = field(default_factory=lambda: np.array([1.0, 0, 0, 0]))
    visible: bool = True
    opacity: float = 1.0
    splats: Optional[Splats] = None  # loaded always (picking needs them), drawn when --show has splats
    mesh: object = None  # trimesh, loaded when --show has meshes
    gizmo: object = None  # transform controls (objects) or a plain frame (background): the nodes' parent
    splat_node: object = None
    mesh_node: object = None

    @property
    def handles(self) -> List:
        """[gizmo or frame, splats node (if drawn), mesh node (if drawn)]."""
        return [h for h in (self.gizmo, self.splat_node, self.mesh_node) if h is not None]

    @property
    def root(self) -> str:
        return f"/objects/{self.id}_{self.name}"

    def matrix(self) -> np.ndarray:
        """[4,4] world transform applied to the object since loading: x -> R (x - pivot) + position."""
        M = np.eye(4)
        R = quat_to_rotmat(torch.from_numpy(np.asarray(self.wxyz, dtype=np.float64))).numpy()
        M[:3, :3] = R
        M[:3, 3] = self.position - R @ self.pivot
        return M


class SceneViewer:
    def __init__(self, run_dir: str | Path, host: str = "127.0.0.1", port: int = 8080, show: str = "splats",
                 server=None):
        """`server`: a running viser server to take over (the live viewer's, after training: the browsers
        connected to it stay connected and get this scene); else a new one on host:port."""
        if show not in ("splats", "meshes", "both"):
            raise SceneError(f"--show {show}: use splats, meshes or both")
        self.run = Path(run_dir)
        self.manifest = read_manifest(self.run)
        self.show = show
        if server is not None:
            server.scene.reset()
            server.gui.reset()
        self.server = server if server is not None else import_viser().ViserServer(host=host, port=port, verbose=False)
        self.port = self.server.get_port()
        self._lock = threading.RLock()  # viser runs callbacks in a thread pool
        self.objects: Dict[str, ViewObject] = {}
        self.selected: Optional[str] = None
        self.checkboxes: Dict[str, object] = {}
        self.highlight: List = []
        meshes = {e["id"]: e for e in self.manifest.get("meshes") or [] if e.get("mesh")}
        saved = self.manifest.get("transforms") or {}
        for e in self.manifest["objects"]:
            if e["id"] < 0:
                continue
            sp = self.run / e["files"][0] if e.get("files") else None
            mp = self.run / mesh_file(meshes[e["id"]]) if e["id"] in meshes else None
            box = np.array(e.get("bbox") or [[0, 0, 0], [0, 0, 0]], float)
            o = ViewObject(e["id"], e["name"], sp, mp, box.mean(0), box, int(e.get("gaussians", 0)))
            o.position = o.pivot.copy()
            if e["name"] in saved:
                o.position = np.array(saved[e["name"]]["position"], float)
                o.wxyz = np.array(saved[e["name"]]["wxyz"], float)
                o.visible = bool(saved[e["name"]].get("visible", True))
            self.objects[e["name"]] = o
            self._add(o)
        self.views = run_views(self.manifest, self.run)
        self._setup_background()
        self.opening = open_at_first_view(self.server, self.views, self._scene_centre(), self.manifest.get("up"))
        self.frustums = add_frustums(self.server, self.views)
        self._gui()

        @self.server.scene.on_click()
        def _(ev):
            self.click(ev.ray_origin, ev.ray_direction)

        def follow(client):  # cut the background away as this browser's camera moves
            client.camera.on_update(lambda cam: self.update_background(np.asarray(cam.position, float)))

        self.server.on_client_connect(follow)
        for client in self.server.get_clients().values():  # already connected (a taken-over live viewer)
            follow(client)

    # ------------------------------------------------------------------ scene
    def _add(self, o: ViewObject) -> None:
        if o.id > 0:
            tc = self.server.scene.add_transform_controls(o.root, scale=0.3, position=o.position, wxyz=o.wxyz,
                                                          disable_axes=True, disable_sliders=True, disable_rotations=True)

            @tc.on_update
            def _(ev, o=o, tc=tc):
                o.position, o.wxyz = np.array(tc.position, float), np.array(tc.wxyz, float)
                if self.selected == o.name:
                    self._show_selected()
        else:
            tc = self.server.scene.add_frame(o.root, show_axes=False, position=o.position, wxyz=o.wxyz)
        o.gizmo = tc
        if o.splat_file and o.splat_file.exists():
            o.splats = Splats(read_ply(o.splat_file))
        if self.show in ("meshes", "both") and o.mesh_file and o.mesh_file.exists():
            o.mesh = load_mesh(o.mesh_file)
            o.mesh.apply_translation(-o.pivot)
        self._draw(o)

    def _draw(self, o: ViewObject, keep: Optional[np.ndarray] = None, mesh: bool = True) -> None:
        """(Re)draw an object's splats (updated in place) and, with `mesh`, its mesh (re-sent) at its opacity
        and visibility (`keep`: the background's Gaussians to draw, see update_background)."""
        if self.show in ("splats", "both") and o.splats is not None:
            o.splat_node = o.splats.draw(self.server.scene, f"{o.root}/splats", o.splat_node, o.pivot, o.opacity,
                                         keep, visible=o.visible)
        if o.mesh is not None and mesh:
            o.mesh_node = self.server.scene.add_mesh_trimesh(f"{o.root}/mesh", _with_alpha(o.mesh, o.opacity),
                                                             visible=o.visible and o.opacity > 0.02)

    def _scene_centre(self) -> np.ndarray:
        """Mean of the objects' box centres (the background's when there is no object)."""
        objs = [o.pivot for o in self.objects.values() if o.id > 0] or [o.pivot for o in self.objects.values()]
        return np.mean(objs, 0) if objs else np.zeros(3)

    def _setup_background(self) -> None:
        """From outside the room the near walls would hide everything: the background's Gaussians are drawn
        only from their inner side there (see common.background_keep); inside, all of them."""
        bg = next((o for o in self.objects.values() if o.id == 0), None)
        self._bg = bg if bg is not None and bg.splats is not None and len(bg.splats) else None
        if self._bg is None:
            return
        inside = (np.mean([v["c2w"][:3, 3] for v in self.views], 0) if self.views else self._bg.pivot)
        self._bg_inward = facing_inward(self._bg.splats, inside)
        self._bg_keep = np.ones(len(self._bg.splats), bool)

    def update_background(self, cam: np.ndarray) -> float:
        """Cut the background away for a camera at `cam` [3]; redraws it when the drawn set changes by more
        than 1%. Returns the fraction of background Gaussians drawn."""
        if self._bg is None:
            return 1.0
        with self._lock:
            keep = background_keep(self._bg.splats, self._bg_inward, self._bg.box, cam)
            if (keep != self._bg_keep).mean() > 0.01:
                self._bg_keep = keep
                self._draw(self._bg, keep, mesh=False)
            return float(self._bg_keep.mean())

    def go_to_view(self, name: str) -> None:
        """Move every connected browser's camera to view `name`."""
        go_to_view(self.server, next(v for v in self.views if v["name"] == name), self._scene_centre())

    # ------------------------------------------------------------------ panel
    def _gui(self) -> None:
        gui = self.server.gui
        add_frustum_gui(self.server, self.views, self.frustums, self.opening, self._scene_centre())
        with gui.add_folder("objects"):
            for name, o in self.objects.items():
                cb = gui.add_checkbox(f"{o.id} {name}", initial_value=o.visible)
                self.checkboxes[name] = cb

                @cb.on_update
                def _(ev, o=o, cb=cb):
                    if cb.value != o.visible:
                        self.set_visible(o.name, cb.value)
        movable = [n for n, o in self.objects.items() if o.id > 0]
        with gui.add_folder("selected object"):
            self.select = gui.add_dropdown("object", options=movable or ["-"], initial_value=movable[0] if movable else "-")
            self.info = gui.add_markdown("click an object in the scene, or pick it above")
            self.opacity_gui = gui.add_slider("opacity", min=0.0, max=1.0, step=0.05, initial_value=1.0)
            self.pos_gui = gui.add_vector3("position", initial_value=(0.0, 0.0, 0.0), step=0.01)
            self.rot_gui = gui.add_vector3("rotation xyz (deg)", initial_value=(0.0, 0.0, 0.0), step=1.0)
            reset = gui.add_button("reset")
        self._syncing = False

        @self.select.on_update
        def _(ev):
            if not self._syncing and self.select.value in self.objects:
                self.select_object(self.select.value)

        @self.opacity_gui.on_update
        def _(ev):
            if self.selected and not self._syncing:
                self.set_opacity(self.selected, self.opacity_gui.value)

        @self.pos_gui.on_update
        def _(ev):
            if self.selected and not self._syncing:
                self.set_transform(self.selected, position=np.array(self.pos_gui.value, float))

        @self.rot_gui.on_update
        def _(ev):
            if self.selected and not self._syncing:
                from scipy.spatial.transform import Rotation

                xyzw = Rotation.from_euler("xyz", self.rot_gui.value, degrees=True).as_quat()
                self.set_transform(self.selected, wxyz=xyzw[[3, 0, 1, 2]])

        @reset.on_click
        def _(ev):
            if self.selected:
                o = self.objects[self.selected]
                self.set_transform(o.name, position=o.pivot, wxyz=np.array([1.0, 0, 0, 0]))
                self._show_selected()

        for label, key, fn in (("hide selected object", "H", self.hide_selected),
                               ("isolate selected object", "I", self.isolate_selected),
                               ("show all objects", "A", self.show_all)):
            cmd = gui.add_command(label, hotkey=key, description=f"hotkey {key}")
            cmd.on_trigger(lambda ev, fn=fn: fn())
        gui.add_markdown("click an object to select it; hotkeys **H** hide, **I** isolate, **A** show all")
        self.save_button = gui.add_button("save re-composed scene")

        @self.save_button.on_click
        def _(ev):
            self.save()

        if movable:
            self.select_object(movable[0], outline=False)

    def _show_selected(self) -> None:
        """Mirror the selected object's pose, opacity and facts into the panel's fields."""
        if not self.selected:
            return
        from scipy.spatial.transform import Rotation

        o = self.objects[self.selected]
        self._syncing = True
        try:
            self.select.value = o.name
            self.opacity_gui.value = float(o.opacity)
            self.pos_gui.value = tuple(float(v) for v in o.position)
            self.rot_gui.value = tuple(float(v) for v in Rotation.from_quat(o.wxyz[[1, 2, 3, 0]]).as_euler("xyz", degrees=True))
            self.info.content = self.describe(o.name, markdown=True)
        finally:
            self._syncing = False

    def describe(self, name: str, markdown: bool = False) -> str:
        """'name (id k): N Gaussians, box W x D x H m'."""
        o = self.objects[name]
        dims = " x ".join(f"{d:.2f}" for d in o.box[1] - o.box[0])
        b = "**" if markdown else ""
        return f"{b}{o.name}{b} (id {o.id}): {o.gaussians:,} Gaussians, box {dims} m"

    # ------------------------------------------------------------------ actions (panel, clicks, hotkeys)
    def click(self, origin, direction) -> Optional[str]:
        """A click ray (world frame) from the browser: select the visible object it hits first."""
        cands = {n: (o.splats, o.matrix()) for n, o in self.objects.items()
                 if o.id > 0 and o.visible and o.opacity > 0.02 and o.splats is not None}
        name = pick(cands, origin, direction)
        if name is not None:
            self.select_object(name)
        return name

    def select_object(self, name: str, outline: bool = True) -> None:
        """Select `name`: the panel shows it; `outline` draws its box and a label in the scene."""
        with self._lock:
            for h in self.highlight:
                h.remove()
            self.highlight = []
            self.selected = name
            for other in self.objects.values():  # only the selected object's gizmo is live (and drawn), so a
                if other.id > 0:                   # click on any other object reaches the object, not a gizmo
                    off = other.name != name
                    other.gizmo.disable_axes = other.gizmo.disable_sliders = other.gizmo.disable_rotations = off
            o = self.objects[name]
            if outline:
                sc = self.server.scene
                size, centre = o.box[1] - o.box[0], o.box.mean(0) - o.pivot
                self.highlight = [
                    sc.add_box(f"{o.root}/highlight", color=HIGHLIGHT, dimensions=tuple(np.maximum(size, 1e-3) * 1.05),
                               wireframe=True, position=centre),
                    sc.add_label(f"{o.root}/label", self.describe(name), position=centre + _up_half(self.manifest.get("up"), size),
                                 anchor="bottom-center")]
            self._show_selected()

    def set_visible(self, name: str, visible: bool) -> None:
        with self._lock:
            o = self.objects[name]
            o.visible = visible
            if o.splat_node is not None:
                o.splat_node.visible = visible
            if o.mesh_node is not None:
                o.mesh_node.visible = visible and o.opacity > 0.02
            for h in (self.highlight if name == self.selected else []):
                h.visible = visible
            cb = self.checkboxes.get(name)
            if cb is not None and cb.value != visible:
                cb.value = visible

    def set_opacity(self, name: str, opacity: float) -> None:
        """Scale an object's splat opacities (and its mesh's alpha) by `opacity` in [0, 1]."""
        with self._lock:
            o = self.objects[name]
            o.opacity = float(np.clip(opacity, 0, 1))
            self._draw(o, self._bg_keep if self._bg is o else None)

    def hide_selected(self) -> None:
        if self.selected:
            self.set_visible(self.selected, False)

    def isolate_selected(self) -> None:
        """Only the selected object stays visible (the background too is hidden)."""
        for n in self.objects:
            self.set_visible(n, n == self.selected)

    def show_all(self) -> None:
        for n in self.objects:
            self.set_visible(n, True)

    def set_transform(self, name: str, position=None, wxyz=None) -> None:
        """Move/rotate an object (what dragging its gizmo does)."""
        o = self.objects[name]
        if o.id == 0:
            raise SceneError("the background does not move; move the objects")
        if position is not None:
            o.position = np.asarray(position, float)
        if wxyz is not None:
            o.wxyz = np.asarray(wxyz, float) / np.linalg.norm(wxyz)
        o.gizmo.position, o.gizmo.wxyz = o.position, o.wxyz  # move the gizmo (and its children)

    # ------------------------------------------------------------------ save
    def save(self) -> Dict:
        """scene.json 'transforms' (per object: position, wxyz, 4x4 matrix from the original), splats of
        the re-composed scene under splats/recomposed/ (.ply + .splat), meshes in meshes/recomposed.glb."""
        out = self.run / "splats" / "recomposed"
        parts, nodes = [], {}
        for name, o in self.objects.items():
            M = o.matrix()
            if o.splat_file and o.splat_file.exists():
                g = transform_gaussians(read_ply(o.splat_file), M)
                g["labels"] = torch.full((g["means"].shape[0],), o.id, dtype=torch.long)
                if o.visible:
                    parts.append(g)
                write_ply(out / f"{o.id}_{name}.ply", g)
            if o.mesh_file and o.mesh_file.exists() and o.visible:
                m = load_mesh(o.mesh_file)
                m.apply_transform(M)
                nodes[name] = m
        if parts:
            allg = {k: torch.cat([p[k] for p in parts]) for k in parts[0] if k in ("means", "scales", "quats",
                                                                                  "opacities", "sh0", "shN")}
            write_ply(out / "scene.ply", allg)
            write_splat(out / "scene.splat", allg)
        if nodes:
            from ..export.meshes import write_glb

            write_glb(nodes, self.run / "meshes" / "recomposed.glb")
        self.manifest["transforms"] = {
            name: {"id": o.id, "position": o.position.tolist(), "wxyz": o.wxyz.tolist(), "matrix": o.matrix().tolist(),
                   "visible": o.visible} for name, o in self.objects.items()}
        write_manifest(self.run, self.manifest)
        log.info("saved the re-composed scene to %s", self.run)
        return self.manifest["transforms"]

    def stop(self) -> None:
        self.server.stop()


def _up_half(up, size: np.ndarray) -> np.ndarray:
    """Half the box's extent along the scene's `up` [3]: where the selection label sits (above the box)."""
    up = np.asarray(up if up is not None else [0, 0, 1], float)
    return up * 0.5 * float(np.abs(size) @ np.abs(up))


def _with_alpha(mesh, opacity: float):
    """The mesh itself at opacity 1; else a copy whose glTF material blends at `opacity` (textured meshes;
    vertex-coloured ones stay opaque and are hidden near 0 by the caller)."""
    if opacity >= 0.999 or getattr(mesh.visual, "kind", None) != "texture":
        return mesh
    m = mesh.copy()
    mat = m.visual.material.to_pbr() if hasattr(m.visual.material, "to_pbr") else m.visual.material
    mat.baseColorFactor = np.array([255, 255, 255, int(round(255 * opacity))], np.uint8)
    mat.alphaMode = "BLEND"
    m.visual.material = mat
    return m
