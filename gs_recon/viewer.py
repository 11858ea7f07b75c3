"""The interactive, decomposed scene in the browser (viser): each object's Gaussians (DC colour baked)
and/or mesh under its own transform gizmo, a panel to show/hide, select and move/rotate objects, and a
button that saves the re-composed scene (scene.json "transforms", re-exported splats and glb).

Everything here is in the input's world frame, read from a finished run's exported files.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from .data.errors import SceneError
from .export.splats import read_ply, write_ply, write_splat
from .io_utils import write_json
from .mesh.texture import load_mesh, mesh_file
from .render.sh import C0
from .run_io import read_manifest

log = logging.getLogger("gs_recon")


def quat_wxyz_to_rotmat(q: np.ndarray) -> np.ndarray:
    """[..., 4] (w, x, y, z) -> [..., 3, 3]."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def splat_arrays(g: Dict[str, torch.Tensor]):
    """Gaussians -> viser's arrays: centers [N,3], covariances [N,3,3], rgbs [N,3], opacities [N,1]."""
    R = quat_wxyz_to_rotmat(g["quats"].numpy().astype(np.float64))
    S = np.exp(g["scales"].numpy().astype(np.float64))
    cov = (R * S[:, None, :] ** 2) @ np.swapaxes(R, 1, 2)
    rgb = np.clip(0.5 + C0 * g["sh0"].reshape(-1, 3).numpy(), 0, 1)
    op = 1 / (1 + np.exp(-g["opacities"].numpy()))
    return g["means"].numpy().astype(np.float32), cov.astype(np.float32), rgb.astype(np.float32), op[:, None].astype(np.float32)


@dataclass
class ViewObject:
    id: int
    name: str
    splat_file: Optional[Path]
    mesh_file: Optional[Path]
    pivot: np.ndarray  # [3] the object's centre: the gizmo sits here
    position: np.ndarray = field(default_factory=lambda: np.zeros(3))  # gizmo pose (world)
    wxyz: np.ndarray = field(default_factory=lambda: np.array([1.0, 0, 0, 0]))
    visible: bool = True
    handles: List = field(default_factory=list)

    def matrix(self) -> np.ndarray:
        """[4,4] world transform applied to the object since loading: x -> R (x - pivot) + position."""
        M = np.eye(4)
        R = quat_wxyz_to_rotmat(self.wxyz)
        M[:3, :3] = R
        M[:3, 3] = self.position - R @ self.pivot
        return M


class SceneViewer:
    def __init__(self, run_dir: str | Path, host: str = "127.0.0.1", port: int = 8080, show: str = "splats"):
        import viser

        if show not in ("splats", "meshes", "both"):
            raise SceneError(f"--show {show}: use splats, meshes or both")
        self.run = Path(run_dir)
        self.manifest = read_manifest(self.run)
        self.show = show
        self.server = viser.ViserServer(host=host, port=port, verbose=False)
        self.port = self.server.get_port()
        self.objects: Dict[str, ViewObject] = {}
        meshes = {e["id"]: e for e in self.manifest.get("meshes") or [] if e.get("mesh")}
        saved = self.manifest.get("transforms") or {}
        for e in self.manifest["objects"]:
            if e["id"] < 0:
                continue
            sp = self.run / e["files"][0] if e.get("files") else None
            mp = self.run / mesh_file(meshes[e["id"]]) if e["id"] in meshes else None
            bbox = e.get("bbox") or [[0, 0, 0], [0, 0, 0]]
            o = ViewObject(e["id"], e["name"], sp, mp, (np.array(bbox[0]) + np.array(bbox[1])) / 2)
            o.position = o.pivot.copy()
            if e["name"] in saved:
                o.position = np.array(saved[e["name"]]["position"], float)
                o.wxyz = np.array(saved[e["name"]]["wxyz"], float)
            self.objects[e["name"]] = o
            self._add(o)
        self.views = run_views(self.manifest, self.run)
        up = self.manifest.get("up")
        if up is not None:
            self.server.scene.set_up_direction(tuple(float(x) for x in up))
        self.frustums = []
        if self.views:
            train = [v for v in self.views if v["split"] == "train"] or self.views
            self.opening = train[0]
            cam = self.server.initial_camera
            cam.position, cam.look_at, cam.up, cam.fov = camera_pose(self.opening, self._scene_centre())
            self._add_frustums()
        self._gui()

    # ------------------------------------------------------------------ scene
    def _add(self, o: ViewObject) -> None:
        root = f"/objects/{o.id}_{o.name}"
        movable = o.id > 0
        if movable:
            tc = self.server.scene.add_transform_controls(root, scale=0.3, position=o.position, wxyz=o.wxyz)

            @tc.on_update
            def _(ev, o=o, tc=tc):
                o.position, o.wxyz = np.array(tc.position, float), np.array(tc.wxyz, float)
                if self.selected == o.name:
                    self._show_selected()
        else:
            tc = self.server.scene.add_frame(root, show_axes=False, position=o.position, wxyz=o.wxyz)
        o.handles = [tc]
        if self.show in ("splats", "both") and o.splat_file and o.splat_file.exists():
            c, cov, rgb, op = splat_arrays(read_ply(o.splat_file))
            h = self.server.scene.add_gaussian_splats(f"{root}/splats", c - o.pivot, cov, rgb, op)
            o.handles.append(h)
        if self.show in ("meshes", "both") and o.mesh_file and o.mesh_file.exists():
            m = load_mesh(o.mesh_file)
            m.apply_translation(-o.pivot)
            o.handles.append(self.server.scene.add_mesh_trimesh(f"{root}/mesh", m))

    def _scene_centre(self) -> np.ndarray:
        """Mean of the objects' box centres (the background's when there is no object)."""
        objs = [o.pivot for o in self.objects.values() if o.id > 0] or [o.pivot for o in self.objects.values()]
        return np.mean(objs, 0) if objs else np.zeros(3)

    def _add_frustums(self) -> None:
        """Each view as a camera frustum (OpenCV convention, as viser's) with its photo as a thumbnail; hidden
        until "show cameras" is ticked."""
        from PIL import Image

        cs = np.stack([v["c2w"][:3, 3] for v in self.views])
        scale = 0.03 * float(np.linalg.norm(cs.max(0) - cs.min(0)) or 1.0)
        for v in self.views:
            img = None
            if v.get("photo") is not None and v["photo"].exists():
                im = Image.open(v["photo"]).convert("RGB")
                im.thumbnail((96, 96))
                img = np.asarray(im)
            H, W = v["height"], v["width"]
            fov = 2 * np.arctan2(H / 2, v["K"][1, 1])
            self.frustums.append(self.server.scene.add_camera_frustum(
                f"/cameras/{v['split']}/{v['name']}", fov=float(fov), aspect=W / H, scale=scale, image=img,
                thickness=1.5, thickness_units="screen", visible=False,
                wxyz=rotmat_to_wxyz(v["c2w"][:3, :3]), position=v["c2w"][:3, 3],
                color=(40, 90, 200) if v["split"] == "train" else (200, 90, 40)))

    def go_to_view(self, name: str) -> None:
        """Move every connected browser's camera to view `name` (position, orientation, field of view)."""
        v = next(v for v in self.views if v["name"] == name)
        pos, look, up, fov = camera_pose(v, self._scene_centre())
        for client in self.server.get_clients().values():
            with client.atomic():
                client.camera.position, client.camera.look_at = pos, look
                client.camera.up_direction, client.camera.fov = up, fov

    def _gui(self) -> None:
        gui = self.server.gui
        if self.views:
            with gui.add_folder("views"):
                # off at first: from the opening camera its neighbours' frustums would fill the picture
                show = gui.add_checkbox("show cameras", initial_value=False)
                go = gui.add_dropdown("go to view", options=[f"{v['split']}: {v['name']}" for v in self.views],
                                      initial_value=f"{self.opening['split']}: {self.opening['name']}")

            @show.on_update
            def _(ev):
                for f in self.frustums:
                    f.visible = show.value

            @go.on_update
            def _(ev):
                self.go_to_view(go.value.split(": ", 1)[1])
        with gui.add_folder("objects"):
            for name, o in self.objects.items():
                cb = gui.add_checkbox(f"{o.id} {name}", initial_value=True)

                @cb.on_update
                def _(ev, o=o, cb=cb):
                    self.set_visible(o.name, cb.value)
        movable = [n for n, o in self.objects.items() if o.id > 0]
        self.selected = movable[0] if movable else None
        with gui.add_folder("selected object"):
            self.select = gui.add_dropdown("object", options=movable or ["-"], initial_value=self.selected or "-")
            self.pos_gui = gui.add_vector3("position", initial_value=(0.0, 0.0, 0.0), step=0.01)
            self.rot_gui = gui.add_vector3("rotation xyz (deg)", initial_value=(0.0, 0.0, 0.0), step=1.0)
            reset = gui.add_button("reset")

        @self.select.on_update
        def _(ev):
            self.selected = self.select.value
            self._show_selected()

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

        self._syncing = False
        self._show_selected()
        self.save_button = gui.add_button("save re-composed scene")

        @self.save_button.on_click
        def _(ev):
            self.save()

    def _show_selected(self) -> None:
        """Mirror the selected object's pose into the panel's fields."""
        if not self.selected:
            return
        from scipy.spatial.transform import Rotation

        o = self.objects[self.selected]
        self._syncing = True
        try:
            self.pos_gui.value = tuple(float(v) for v in o.position)
            self.rot_gui.value = tuple(float(v) for v in Rotation.from_quat(o.wxyz[[1, 2, 3, 0]]).as_euler("xyz", degrees=True))
        finally:
            self._syncing = False

    def set_visible(self, name: str, visible: bool) -> None:
        o = self.objects[name]
        o.visible = visible
        for h in o.handles[1:]:
            h.visible = visible

    def set_transform(self, name: str, position=None, wxyz=None) -> None:
        """Move/rotate an object (what dragging its gizmo does)."""
        o = self.objects[name]
        if o.id == 0:
            raise SceneError("the background does not move; move the objects")
        if position is not None:
            o.position = np.asarray(position, float)
        if wxyz is not None:
            o.wxyz = np.asarray(wxyz, float) / np.linalg.norm(wxyz)
        o.handles[0].position, o.handles[0].wxyz = o.position, o.wxyz  # move the gizmo (and its children)

    # ------------------------------------------------------------------ save
    def save(self) -> Dict:
        """scene.json 'transforms' (per object: position, wxyz, 4x4 matrix from the original), splats of
        the re-composed scene under splats/recomposed/ (.ply + .splat), meshes in meshes/recomposed.glb."""
        from scipy.spatial.transform import Rotation

        out = self.run / "splats" / "recomposed"
        parts, nodes = [], {}
        for name, o in self.objects.items():
            M = o.matrix()
            if o.splat_file and o.splat_file.exists():
                g = read_ply(o.splat_file)
                g["means"] = torch.from_numpy((g["means"].numpy() @ M[:3, :3].T + M[:3, 3]).astype(np.float32))
                if not np.allclose(M[:3, :3], np.eye(3)):
                    r = Rotation.from_matrix(M[:3, :3]) * Rotation.from_quat(g["quats"].numpy()[:, [1, 2, 3, 0]])
                    xyzw = r.as_quat()
                    g["quats"] = torch.from_numpy(xyzw[:, [3, 0, 1, 2]].astype(np.float32))
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
            from .mesh.extract import write_glb

            write_glb(nodes, self.run / "meshes" / "recomposed.glb")
        self.manifest["transforms"] = {
            name: {"id": o.id, "position": o.position.tolist(), "wxyz": o.wxyz.tolist(), "matrix": o.matrix().tolist(),
                   "visible": o.visible} for name, o in self.objects.items()}
        write_json(self.run / "scene.json", self.manifest)
        log.info("saved the re-composed scene to %s", self.run)
        return self.manifest["transforms"]

    def stop(self) -> None:
        self.server.stop()


def run_views(manifest: Dict, run_dir: Path) -> List[Dict]:
    """The run's views from scene.json (runs from before this field: []): name, split, c2w [4, 4] (OpenCV
    camera-to-world, input frame), K [3, 3], width, height, photo (path or None)."""
    cams = manifest.get("cameras") or {}
    if not cams.get("world_to_camera"):
        return []
    test = set(cams.get("test") or [])
    scene_dir = Path(manifest.get("scene_dir") or run_dir)
    out = []
    for name, vm, K in zip(cams["names"], cams["world_to_camera"], cams["K"]):
        photo = scene_dir / "images" / name
        out.append({"name": name, "split": "test" if name in test else "train",
                    "c2w": np.linalg.inv(np.asarray(vm, float).reshape(4, 4)), "K": np.asarray(K, float).reshape(3, 3),
                    "width": int(cams["width"]), "height": int(cams["height"]),
                    "photo": photo if photo.exists() else None})
    return out


def camera_pose(view: Dict, centre: np.ndarray):
    """viser camera (position, look_at, up, vertical fov in radians) that sees what `view` saw: at its centre,
    looking along its optical axis to the depth of `centre`, its image-up as up."""
    c2w = view["c2w"]
    pos, fwd, down = c2w[:3, 3], c2w[:3, 2], c2w[:3, 1]
    depth = max(float(np.dot(centre - pos, fwd)), 1e-3)
    fov = 2 * np.arctan2(view["height"] / 2, view["K"][1, 1])
    return pos, pos + depth * fwd, -down, float(fov)


def rotmat_to_wxyz(R: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return np.array([w, x, y, z])
