"""The live viewer: the scene in the browser while it trains (``gs-recon train ... --viewer``).

Every ``refresh_every`` steps the current Gaussians are sent, one node per object and the background (so
the panel can hide them); every 10 steps the panel shows the stage (reconstruction / geometry prior /
appearance prior), step, loss, PSNR and Gaussian count. It opens at the first training camera, as the
finished-run viewer does, which takes over this viewer's server when training ends (pipeline.run
``keep_viewer``), so an open browser stays connected.

The cost inside the training loop is timed (``seconds``); the README gives the measured overhead.
"""
from __future__ import annotations

import time
from typing import Dict

import torch

from ..export.splats import valid_mask
from ..geometry import transform_gaussians
from .common import Splats, add_frustum_gui, add_frustums, import_viser, open_at_first_view, scene_views


class LiveViewer:
    def __init__(self, scene, host: str = "127.0.0.1", port: int = 8080, refresh_every: int = 25):
        self.scene = scene
        self.refresh_every = max(1, int(refresh_every))
        self.server = import_viser().ViserServer(host=host, port=port, verbose=False)
        self.port = self.server.get_port()
        self.url = f"http://{host}:{self.port}"
        self.seconds = 0.0  # wall time spent inside update() (the training loop waits for it)
        self.refreshes = 0
        self.status: Dict = {}
        self.names = {0: "background", **{o.id: o.name for o in scene.objects}}
        self.handles: Dict[int, object] = {}
        M = scene.world_from_internal.double().numpy()
        centre = M[:3, 3]  # the internal frame's origin: the middle of what the cameras look at
        views = scene_views(scene)
        opening = open_at_first_view(self.server, views, centre, (M[:3, :3] @ scene.up.double().numpy()).tolist())
        self.frustums = add_frustums(self.server, views)
        gui = self.server.gui
        self.text = gui.add_markdown("**waiting for the first step**")
        self.live = gui.add_checkbox("refresh splats", initial_value=True)
        add_frustum_gui(self.server, views, self.frustums, opening, centre)
        with gui.add_folder("objects"):
            self.checkboxes = {i: gui.add_checkbox(f"{i} {n}", initial_value=True) for i, n in self.names.items()}
        for i, cb in self.checkboxes.items():
            cb.on_update(lambda ev, i=i: self._set_visible(i))

    def _set_visible(self, i: int) -> None:
        h = self.handles.get(i)
        if h is not None:
            h.visible = self.checkboxes[i].value

    def update(self, trainer, stage: str, metrics: Dict[str, float], total: int) -> None:
        """Called by Trainer.fit after every step."""
        t0 = time.perf_counter()
        step = trainer.step
        if step % 10 == 0 or step == total or not self.status:
            self.status = {"stage": stage, "step": step, "total": total, "loss": metrics.get("loss", float("nan")),
                           "psnr": metrics.get("psnr", float("nan")), "gaussians": int(trainer.params["means"].shape[0])}
            self.text.content = self.describe()
        if self.live.value and (step % self.refresh_every == 0 or step == total or not self.refreshes):
            self.refresh(trainer.params)
        self.seconds += time.perf_counter() - t0

    def describe(self) -> str:
        s = self.status
        return (f"**{s['stage']}** step {s['step']} / {s['total']}  \nloss {s['loss']:.4f} · PSNR {s['psnr']:.2f} dB  \n"
                f"{s['gaussians']:,} Gaussians · refreshed every {self.refresh_every} steps")

    @torch.no_grad()
    def refresh(self, params: Dict[str, torch.Tensor]) -> None:
        """Send the current Gaussians (world frame), one node per label."""
        g = {k: v.detach().cpu() for k, v in params.items()}
        g = transform_gaussians(g, self.scene.world_from_internal)
        ok = valid_mask(g)
        labels = g["labels"]
        for i, name in self.names.items():
            m = ok & (labels == i)
            if not int(m.sum()):  # none left (pruned): no stale node from an earlier refresh
                if i in self.handles:
                    self.handles.pop(i).remove()
                continue
            sub = {k: v[m] for k, v in g.items()}
            self.handles[i] = Splats(sub).draw(self.server.scene, f"/live/{i}_{name}", self.handles.get(i),
                                               visible=self.checkboxes[i].value)
        self.refreshes += 1

    def finish(self, note: str) -> None:
        """The last word in the panel (training is over; what happens next)."""
        self.text.content = (self.describe() + "  \n" if self.status else "") + note

    def stop(self) -> None:
        self.server.stop()

