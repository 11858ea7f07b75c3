"""``gs-recon``: one command, with a subcommand per job (console script in setup.py).

    gs-recon train SCENE_DIR [--config tiny_cpu] [--key.sub value ...]
    gs-recon COMMAND --help
"""
from __future__ import annotations

import difflib
import importlib
import runpy
import sys
from pathlib import Path

# command -> (module under gs_recon.cli, one-line summary)
COMMANDS = {
    "train": ("train", "reconstruct a decomposed Gaussian scene (+ meshes, splats) from posed photos"),
    "eval": ("eval", "score a finished run: test-view PSNR/SSIM/LPIPS, mesh Chamfer/F-score vs ground truth"),
    "export": ("export", "re-export a run or some of its objects as .ply / .splat splats or a .glb mesh scene"),
    "extract-mesh": ("extract_mesh", "redo a run's TSDF meshes with other settings"),
    "view": ("view", "browse a run in the browser (viser): toggle, move and save objects"),
    "make-scene": ("make_scene", "write a synthetic multi-object scene with ground truth"),
    "pose": ("pose", "estimate camera poses for a folder of photos (pycolmap SfM) into sparse/0"),
    "bench": (None, "run a benchmark script from a source checkout: render, visibility, train, mesh, texture, viewer, prior, synthetic"),
}
BENCHES = {"render": "bench_render.py", "visibility": "bench_visibility.py", "train": "bench_train.py",
           "mesh": "bench_mesh.py", "texture": "bench_texture.py", "viewer": "bench_viewer.py",
           "prior": "bench_prior.py", "synthetic": "bench_synthetic.py"}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [__doc__.strip().splitlines()[0], "", "usage: gs-recon COMMAND [ARGS ...]", "", "commands:"]
    lines += [f"  {c:<{width}}  {s}" for c, (_, s) in COMMANDS.items()]
    lines += ["", "gs-recon COMMAND --help lists a command's options (types, defaults, where each constant comes from)."]
    return "\n".join(lines)


def bench(argv) -> int:
    """Benchmarks live in tools/ of a source checkout (they write docs/BENCHMARKS.md, read ../shared/data)."""
    tools = Path(__file__).resolve().parents[2] / "tools"
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BENCHES:
        print(f"usage: gs-recon bench {{{','.join(BENCHES)}}} [ARGS ...]", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    script = tools / BENCHES[argv[0]]
    if not script.exists():
        print(f"error: benchmarks run from a source checkout ({script} not found); clone the repository and run "
              f"gs-recon bench there", file=sys.stderr)
        return 2
    sys.argv = [str(script), *argv[1:]]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"gs-recon {version('gs_recon')}")
        except PackageNotFoundError:
            print("gs-recon (not installed: running from a checkout)")
        return 0
    cmd = argv[0]
    if cmd not in COMMANDS:
        near = difflib.get_close_matches(cmd, list(COMMANDS), n=1)
        hint = f"; did you mean {near[0]}?" if near else ""
        print(f"error: unknown command '{cmd}'{hint} (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    if cmd == "bench":
        return bench(argv[1:])
    mod = importlib.import_module(f"gs_recon.cli.{COMMANDS[cmd][0]}")
    return mod.main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
