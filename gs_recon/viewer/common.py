"""What the finished-run viewer (app.py) and the live training viewer (live.py) share: Gaussians as viser's
arrays, the photos' views and the opening camera, camera frustums, picking an object with a click ray, and
the background drawn so that it does not hide the scene from outside.

Everything here is in the input's world frame.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..errors import SceneError
from ..geometry import covariance_3d, quat_to_rotmat, rotmat_to_quat
from ..render.sh import C0


def import_viser():
    """viser, or a one-line SceneError saying how to install it (it is the `viewer` extra)."""
    try:
        import viser
    except ImportError as e:
        raise SceneError(f"the viewer needs viser ({e.name} missing): pip install 'gs_recon[viewer]'") from None
    return viser


class Splats:
    """One object's Gaussians as viser draws them: centers [N, 3], covariances [N, 3, 3], rgbs [N, 3] in
    [0, 1], opacities [N, 1]; plus what picking and culling need: radii [N] (2 sigma along the longest
    axis) and normals [N, 3] (the shortest axis, unoriented)."""

    def __init__(self, g: Dict[str, torch.Tensor]):
        q, S = g["quats"].detach().cpu().double(), g["scales"].detach().cpu().double().exp()
        self.covariances = covariance_3d(q, S).numpy().astype(np.float32)
        R, S = quat_to_rotmat(q).numpy(), S.numpy()
        sh0 = g["sh0"].detach().cpu().numpy().reshape(-1, 3)
        self.rgbs = np.clip(0.5 + C0 * sh0, 0, 1).astype(np.float32)
        self.opacities = (1 / (1 + np.exp(-g["opacities"].detach().cpu().numpy())))[:, None].astype(np.float32)
        self.centers = g["means"].detach().cpu().numpy().astype(np.float32)
        self.radii = (2 * S.max(1)).astype(np.float32)
        self.normals = R[np.arange(len(S)), :, S.argmin(1)].astype(np.float32)

    def __len__(self) -> int:
        return self.centers.shape[0]

    def draw(self, scene, name: str, handle=None, offset: np.ndarray = np.zeros(3), opacity: float = 1.0,
             keep: Optional[np.ndarray] = None, visible: bool = True):
        """Draw as node `name`: centres moved by -offset (into a gizmo's frame), opacities scaled by
        `opacity`, only the Gaussians in `keep` [N] bool (default all). An existing `handle` is updated in
        place (one buffer message, and no fade-in as a new node gets: live refreshes stay steady).
        Returns the handle."""
        k = slice(None) if keep is None else keep
        arrays = (self.centers[k] - offset, self.covariances[k], self.rgbs[k], self.opacities[k] * float(opacity))
        if handle is None:
            return scene.add_gaussian_splats(name, *arrays, visible=visible)
        handle.set_gaussians(*arrays)
        handle.visible = visible
        return handle


# ---------------------------------------------------------------------- views and the opening camera
def make_views(names: Sequence[str], world_to_camera: np.ndarray, Ks: np.ndarray, width: int, height: int,
               test: Sequence[str], images_dir: Path) -> List[Dict]:
    """Views as the viewers use them: name, split, c2w [4, 4] (OpenCV camera-to-world), K [3, 3], width,
    height, photo (path or None). world_to_camera [C, 4, 4], Ks [C, 3, 3]."""
    test = set(test)
    out = []
    for name, vm, K in zip(names, world_to_camera, Ks):
        photo = Path(images_dir) / name
        out.append({"name": name, "split": "test" if name in test else "train",
                    "c2w": np.linalg.inv(np.asarray(vm, float).reshape(4, 4)), "K": np.asarray(K, float).reshape(3, 3),
                    "width": int(width), "height": int(height), "photo": photo if photo.exists() else None})
    return out


def run_views(manifest: Dict, run_dir: Path) -> List[Dict]:
    """The run's views from scene.json (runs from before this field: [])."""
    cams = manifest.get("cameras") or {}
    if not cams.get("world_to_camera"):
        return []
    scene_dir = Path(manifest.get("scene_dir") or run_dir)
    return make_views(cams["names"], cams["world_to_camera"], cams["K"], cams["width"], cams["height"],
                      cams.get("test") or [], scene_dir / "images")


def scene_views(scene) -> List[Dict]:
    """A loaded Scene's views (the live viewer: no scene.json yet)."""
    return make_views(scene.image_names, scene.viewmats_world().numpy(), scene.Ks.numpy(), scene.width,
                      scene.height, [scene.image_names[i] for i in scene.test_idx], Path(scene.root) / "images")


def camera_pose(view: Dict, centre: np.ndarray):
    """viser camera (position, look_at, up, vertical fov in radians) that sees what `view` saw: at its centre,
    looking along its optical axis to the depth of `centre`, its image-up as up."""
    c2w = view["c2w"]
    pos, fwd, down = c2w[:3, 3], c2w[:3, 2], c2w[:3, 1]
    depth = max(float(np.dot(centre - pos, fwd)), 1e-3)
    fov = 2 * np.arctan2(view["height"] / 2, view["K"][1, 1])
    return pos, pos + depth * fwd, -down, float(fov)


def open_at_first_view(server, views: List[Dict], centre: np.ndarray, up: Optional[Sequence[float]]) -> Optional[Dict]:
    """Set the scene's up direction and the camera every new browser opens with: the first training view.
    Returns that view (None without views)."""
    if up is not None:
        server.scene.set_up_direction(tuple(float(x) for x in up))
    if not views:
        return None
    opening = ([v for v in views if v["split"] == "train"] or views)[0]
    cam = server.initial_camera
    cam.position, cam.look_at, cam.up, cam.fov = camera_pose(opening, centre)
    return opening


def go_to_view(server, view: Dict, centre: np.ndarray) -> None:
    """Move every connected browser's camera to `view` (position, orientation, field of view)."""
    pos, look, up, fov = camera_pose(view, centre)
    for client in server.get_clients().values():
        with client.atomic():
            client.camera.position, client.camera.look_at = pos, look
            client.camera.up_direction, client.camera.fov = up, fov


def add_frustums(server, views: List[Dict]) -> List:
    """Each view as a camera frustum (OpenCV convention, as viser's) with its photo as a thumbnail; training
    views blue, test views orange; hidden until shown."""
    from PIL import Image

    if not views:
        return []
    cs = np.stack([v["c2w"][:3, 3] for v in views])
    scale = 0.03 * float(np.linalg.norm(cs.max(0) - cs.min(0)) or 1.0)
    out = []
    for v in views:
        img = None
        if v.get("photo") is not None and v["photo"].exists():
            im = Image.open(v["photo"]).convert("RGB")
            im.thumbnail((96, 96))
            img = np.asarray(im)
        fov = 2 * np.arctan2(v["height"] / 2, v["K"][1, 1])
        out.append(server.scene.add_camera_frustum(
            f"/cameras/{v['split']}/{v['name']}", fov=float(fov), aspect=v["width"] / v["height"], scale=scale,
            image=img, thickness=1.5, thickness_units="screen", visible=False,
            wxyz=rotmat_to_quat(v["c2w"][:3, :3]), position=v["c2w"][:3, 3],
            color=(40, 90, 200) if v["split"] == "train" else (200, 90, 40)))
    return out


def add_frustum_gui(server, views: List[Dict], frustums: List, opening: Optional[Dict], centre) -> None:
    """The "views" folder: a "show cameras" toggle and a "go to view" dropdown."""
    if not views:
        return
    gui = server.gui
    with gui.add_folder("views"):
        # off at first: from the opening camera its neighbours' frustums would fill the picture
        show = gui.add_checkbox("show cameras", initial_value=False)
        label = lambda v: f"{v['split']}: {v['name']}"  # noqa: E731
        go = gui.add_dropdown("go to view", options=[label(v) for v in views], initial_value=label(opening or views[0]))

    @show.on_update
    def _(ev):
        for f in frustums:
            f.visible = show.value

    @go.on_update
    def _(ev):
        name = go.value.split(": ", 1)[1]
        go_to_view(server, next(v for v in views if v["name"] == name), centre)


# ---------------------------------------------------------------------- picking and the background
def ray_hit(splats: Splats, origin: np.ndarray, direction: np.ndarray, min_opacity: float = 0.3) -> float:
    """Distance along the ray origin + t direction ([3], [3]; direction need not be unit) to the first of
    `splats` it enters (each Gaussian a sphere of its 2-sigma radius; Gaussians below `min_opacity` are
    not hit); inf when none."""
    d = np.asarray(direction, np.float64)
    d = d / np.linalg.norm(d)
    keep = splats.opacities[:, 0] >= min_opacity
    c = splats.centers[keep].astype(np.float64) - np.asarray(origin, np.float64)
    r = splats.radii[keep].astype(np.float64)
    t = c @ d
    d2 = (c * c).sum(1) - t * t
    inside = (d2 < r * r) & (t > 0)
    if not inside.any():
        return float("inf")
    return float((t[inside] - np.sqrt(r[inside] ** 2 - d2[inside])).clip(min=0).min())


def pick(candidates: Dict[str, tuple], origin, direction) -> Optional[str]:
    """The name of the object a click ray hits first. candidates: name -> (Splats in the object's original
    frame, [4, 4] transform applied since loading); the ray is in the world frame. None when it hits none."""
    best, best_t = None, float("inf")
    for name, (splats, M) in candidates.items():
        Mi = np.linalg.inv(M)
        o = Mi[:3, :3] @ np.asarray(origin, float) + Mi[:3, 3]
        d = Mi[:3, :3] @ np.asarray(direction, float)
        t = ray_hit(splats, o, d)  # M is rigid: distances are the world's
        if t < best_t:
            best, best_t = name, t
    return best


def facing_inward(splats: Splats, inside: np.ndarray) -> np.ndarray:
    """[N, 3] each background Gaussian's normal (shortest axis) turned towards `inside` [3] (a point in the
    room: the cameras' centroid), so a wall's normals face the room."""
    n = splats.normals.astype(np.float64)
    s = np.sign(((inside - splats.centers) * n).sum(1, keepdims=True))
    return n * np.where(s == 0, 1, s)


def background_keep(splats: Splats, inward: np.ndarray, box: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """[N] bool: the background Gaussians to draw from camera position `cam` [3]. Inside the background's
    box [2, 3] every one; outside, only those seen from their inner side (inward normal towards the camera),
    so the near walls and floor, seen from behind, no longer hide the objects: a cut-away dollhouse view."""
    if np.all(cam >= box[0]) and np.all(cam <= box[1]):
        return np.ones(len(splats), bool)
    return ((cam - splats.centers) * inward).sum(1) > 0
