"""Write a run's meshes (from mesh/extract.py::build_meshes): meshes/objects/<id>_<name>.ply (vertex colours)
and .obj/.mtl/_albedo.png (textured), meshes/background.*, meshes/scene.ply and meshes/scene.glb (one named,
textured node per object), all in the input's world frame and each written atomically; glTF scenes."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

from ..config import MeshConfig
from ..io_utils import atomic_path
from ..mesh.extract import MeshResult, build_meshes
from ..mesh.texture import textured_mesh
from ..run.layout import object_file_stem


def _export(mesh, path: Path) -> None:
    with atomic_path(path) as tmp:
        mesh.export(str(tmp), file_type=path.suffix[1:])


def write_glb(nodes: Dict[str, object], path: Path) -> None:
    """A glTF binary scene with one node (and geometry) per entry, named after its key."""
    import trimesh

    sc = trimesh.Scene()
    for name, m in nodes.items():
        sc.add_geometry(m, node_name=name, geom_name=name)
    with atomic_path(path) as tmp:
        tmp.write_bytes(sc.export(file_type="glb"))


def glb_node(r: MeshResult, stem: str):
    """What a glTF scene shows of r: its textured mesh with the albedo as a PBR material, else the
    vertex-coloured mesh."""
    if r.textured is None:
        return r.mesh
    t = r.textured
    return textured_mesh(t.vertices, t.faces, t.visual.uv, r.texture_image, name=stem, pbr=True)


def write_meshes(results: List[MeshResult], out_dir: Path, whole: bool = True) -> List[Dict]:
    """Write build_meshes' results under out_dir; with `whole`, also meshes/scene.ply (all plain meshes). Always
    meshes/scene.glb when any mesh exists. Returns manifest entries (paths relative to out_dir)."""
    import trimesh

    out_dir = Path(out_dir)
    entries, nodes, plain = [], {}, {}
    for r in results:
        if r.mesh is None:
            entries.append({"id": r.id, "name": r.name, "mesh": None})
            continue
        stem = "background" if r.id == 0 else object_file_stem(r.id, r.name)
        folder = "meshes" if r.id == 0 else "meshes/objects"
        files = [f"{folder}/{stem}.ply"]
        _export(r.mesh, out_dir / files[0])
        if r.textured is not None:
            files += _write_obj(r.textured, out_dir, folder, stem)
        elif r.id != 0:
            files.append(f"{folder}/{stem}.obj")
            _export(r.mesh, out_dir / files[-1])
        entries.append({"id": r.id, "name": r.name, **r.stats, "mesh": files, "seconds": r.seconds})
        nodes[r.name], plain[r.name] = glb_node(r, stem), r.mesh
    if whole and nodes:
        _export(trimesh.util.concatenate(list(plain.values())), out_dir / "meshes" / "scene.ply")
        entries.append({"id": -1, "name": "scene", "mesh": ["meshes/scene.ply", "meshes/scene.glb"]})
    if nodes:
        write_glb(nodes, out_dir / "meshes" / "scene.glb")
    return entries


def extract_meshes(params, scene, out_dir: Path, cfg: Optional[MeshConfig] = None,
                   objects: Optional[List[int]] = None, progress: bool = False, room: Optional[Dict] = None,
                   room_views: int = 8) -> List[Dict]:
    """build_meshes then write_meshes (scene.ply only when all objects were meshed). Returns manifest entries."""
    return write_meshes(build_meshes(params, scene, cfg, objects, progress, room, room_views), out_dir,
                        whole=objects is None)


def _write_obj(mesh, out_dir: Path, folder: str, stem: str) -> List[str]:
    """OBJ + MTL + <stem>_albedo.png into out_dir/folder, each written atomically; returns their paths
    relative to out_dir."""
    import trimesh

    mesh.visual.material.name = f"{stem}_albedo"
    text, extra = trimesh.exchange.obj.export_obj(mesh, include_texture=True, return_texture=True,
                                                  mtl_name=f"{stem}.mtl", include_normals=False)
    out = []
    for fname, data in [(f"{stem}.obj", text.encode())] + sorted(extra.items()):
        with atomic_path(out_dir / folder / fname) as tmp:
            tmp.write_bytes(data)
        out.append(f"{folder}/{fname}")
    return out
