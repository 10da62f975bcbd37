"""Helpers of the documentation build (imported by docs/conf.py by name, so that Sphinx can
cache its configuration)."""

from __future__ import annotations


def scene_scraper(block, block_vars, gallery_conf):
    """Save a still of the last frame of the newest scene a gallery block made, as the
    example's thumbnail. The page itself embeds the scene's player (captured from
    ``_repr_html_``), so nothing is added to the page here."""
    from scenes.base import Scene

    seen = block_vars.setdefault("nndynamics_scenes", set())
    scenes = [
        v
        for v in block_vars["example_globals"].values()
        if isinstance(v, Scene) and id(v) not in seen
    ]
    for scene in scenes:
        seen.add(id(scene))
    if scenes:
        path = next(block_vars["image_path_iterator"])
        scenes[-1].with_options(width=640, height=360, dpi=50).still(path)
    return ""


#: The gallery's order: the flagship, your own loop, then scenes of experiments, scenes for
#: any recording, instruments, integrations. An example not listed comes after, by name.
GALLERY_ORDER = [
    "plot_relu_particles.py",
    "plot_record_your_own.py",
    "plot_render.py",
    "plot_lecture.py",
    "plot_sweep.py",
    "plot_resume.py",
    "plot_compile.py",
    "plot_mass_shuffle.py",
    "plot_spiral.py",
    "plot_classifiers.py",
    "plot_distributions.py",
    "plot_edge_of_stability.py",
    "plot_lazy_vs_rich.py",
    "plot_weights.py",
    "plot_curves.py",
    "plot_layers.py",
    "plot_particles.py",
    "plot_sharpness.py",
    "plot_representations.py",
    "plot_landscape.py",
    "plot_tensorboard.py",
    "plot_lightning.py",
    "plot_huggingface.py",
    "plot_ddp.py",
]


def gallery_order(filename: str) -> tuple[int, str]:
    """Sort key of a gallery script (``within_subsection_order``)."""
    from pathlib import Path

    name = Path(filename).name
    rank = GALLERY_ORDER.index(name) if name in GALLERY_ORDER else len(GALLERY_ORDER)
    return rank, name
