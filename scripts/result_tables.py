"""Markdown tables and figures of ``scripts/reproduce.py``: our mean ± std next to what the papers published.

``measured[results_file][experiment_key]`` holds the ``metrics.csv`` rows (dicts of floats) of each run.
"""

from __future__ import annotations

import datetime
import functools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import published as paper  # noqa: E402
from bundle.networks import ARCHITECTURES, build_network  # noqa: E402
from published import FGSM_LOSSES  # noqa: E402

Rows = list[dict]
OTHERS = ("right_lung", "left_lung", "right_clavicle", "left_clavicle")


def stat(rows: Rows, value: Callable[[dict], float]) -> tuple[float, float]:
    """Mean and population standard deviation of ``value(row)`` over ``rows``."""
    values = [value(r) for r in rows]
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def cell(rows: Rows | None, value: Callable[[dict], float], scale: float = 100.0, digits: int = 1) -> str:
    """``mean ± std`` of a run's rows (times ``scale``), ``-`` when the run is not in this reproduction."""
    if not rows:
        return "-"
    mean, std = stat(rows, value)
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def column(name: str) -> Callable[[dict], float]:
    return lambda r: r[name]


def others_iou(r: dict, prefix: str = "iou_", skip: str = "heart") -> float:
    """Mean IoU of the four structures other than ``skip`` (with the target, or ``gt_iou_`` for ground truth)."""
    names = [n for n in (*OTHERS, "heart") if n != skip]
    return sum(r[prefix + n] for n in names) / len(names)


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(x) for x in line) + " |" for line in lines]
    return "\n".join(out) + "\n"


def _preamble(title: str, command: str, cases: int, mode, minutes: float, splits: str) -> str:
    return (f"# {title}\n\nWritten by `{command}` on {datetime.date.today().isoformat()} ({mode.name} mode, "
            f"{minutes:.0f} min on this machine for the runs this invocation made; runs already complete in its "
            f"outputs folder are reused). Cases: the first {cases} of {splits}. "
            f"Ours: mean ± standard deviation over those cases; the paper's values as published. A `-` marks a "
            f"setting this mode does not run.\n\n")


# ---------------------------------------------------------------- ASMA, Ozbulak et al. 2019


def asma_markdown(runs: dict[str, Rows], preamble: str, steps: int) -> str:
    lines = []
    for task in ("fundus", "dermoscopy"):
        for variant in ("ssm", "asm", "asma"):
            rows = runs.get(f"{task}_{variant}")
            pub = paper.ASMA_TABLE1[(task, variant)]
            lines.append([task, variant.upper(),
                          cell(rows, column("l2"), 1, 2), f"{pub[0][0]:.2f} ± {pub[0][1]:.2f}",
                          cell(rows, column("linf"), 1, 2), f"{pub[1][0]:.2f} ± {pub[1][1]:.2f}",
                          cell(rows, column("target_iou")), f"{pub[2][0] * 100:.0f} ± {pub[2][1] * 100:.0f}",
                          cell(rows, column("pixel_accuracy")), f"{pub[3][0] * 100:.0f} ± {pub[3][1] * 100:.0f}",
                          cell(rows, column("steps"), 1, 0)])
    header = ["dataset", "method", "L2", "paper", "L∞", "paper", "IoU %", "paper", "PA %", "paper", "steps"]
    return (preamble + "## Table 1: image modification and mask accuracy\n\nL2 and L∞ of the perturbation on "
            "images in [0, 1] (ours 256x256, the paper's 572x572); IoU and pixel accuracy (PA) of the adversarial "
            f"prediction with the target mask, which is another case's label. At most {steps} steps; each case "
            f"stops at a target IoU of 0.99 (`configs/asma.yaml`).\n\n" + _table(header, lines))


# ---------------------------------------------------------------- Bortsova et al. 2021


def _eps_rows(runs: dict[str, Rows], key: Callable[[float], str], value, published: Sequence[float],
              label: str) -> list[list[str]]:
    """Our row over the papers' ε values and the paper's row under it."""
    return [[label] + [cell(runs.get(key(e)), value) for e in paper.EPS],
            [f"{label}, paper"] + [f"{v:.1f}" for v in published]]


def heart_markdown(runs: dict[str, Rows], preamble: str, figures: Sequence[str]) -> str:
    """Tables 1-4 and the Figure 2 settings of the heart-attack paper, ours next to the published values."""
    eps_header = ["attack"] + [f"ε = {e}" for e in paper.EPS]
    any_rows = next(iter(runs.values()))
    clean = cell(any_rows, column("clean_miou_gt"))
    text = [preamble, "Targeted and untargeted L∞ PGD, 100 steps, step ε/20, loss: negative mean soft IoU. "
            "White box: crafted on the evaluated network; black box: crafted on the surrogate "
            "(`configs/transfer.yaml`), measured on the target network. ε in the model's [-1, 1] units.\n\n"]

    lines = []
    for box in ("white-box", "black-box"):
        lines += _eps_rows(runs, lambda e, b=box[0] + "b": f"untargeted_{b}_eps{e}", column("adv_miou_gt"),
                           paper.HEART_TABLE1[box], box)
    text += [f"## Table 1: untargeted attacks\n\nMean IoU x 100 of the adversarial prediction with the ground truth "
             f"over the five structures. Clean: ours {clean}, paper {paper.HEART_TABLE1_CLEAN}.\n\n",
             _table(eps_header, lines), "\n"]

    lines = []
    for measure, col in (("target", "iou_heart"), ("truth", "gt_iou_heart")):
        for size in ("small", "large"):
            for box in ("white-box", "black-box"):
                lines += _eps_rows(runs, lambda e, s=size, b=box[0] + "b": f"heart_{s}_{b}_eps{e}", column(col),
                                   paper.HEART_TABLE2[(measure, size, box)], f"vs {measure}, {size}, {box}")
    clean_heart = cell(any_rows, column("clean_iou_heart"))
    text += [f"## Table 2: heart-symbol attacks, the heart\n\nHeart IoU x 100 of the adversarial prediction with the "
             f"heart symbol (\"vs target\") and with the ground-truth heart (\"vs truth\"). The other structures' "
             f"target is their ground truth (\"attack all\"). Clean heart IoU: ours {clean_heart}, paper "
             f"{paper.HEART_TABLE2_CLEAN}.\n\n", _table(eps_header, lines), "\n"]

    lines = []
    for size in ("small", "large"):
        for box in ("white-box", "black-box"):
            lines += _eps_rows(runs, lambda e, s=size, b=box[0] + "b": f"heart_{s}_{b}_eps{e}", others_iou,
                               paper.HEART_TABLE3[(size, box)], f"{size}, {box}")
    text += [f"## Table 3: heart-symbol attacks, the other structures\n\nMean IoU x 100 of the four other "
             f"structures with their target, the ground truth outside the symbol (the large one takes lung "
             f"pixels). Clean: ours "
             f"{cell(any_rows, lambda r: others_iou(r, 'clean_iou_'))}, paper {paper.HEART_TABLE3_CLEAN}.\n\n",
             _table(eps_header, lines), "\n"]

    lines = []
    for name, pub in paper.HEART_TABLE4.items():
        ours = [name.replace("_", " "), cell(any_rows, column(f"clean_iou_{name}"))]
        ours += [cell(runs.get(f"resize_{name}_x{f}"), column(f"iou_{name}")) for f in paper.RESIZE_FACTORS]
        lines += [ours, [f"{name.replace('_', ' ')}, paper"] + [f"{v:.1f}" for v in pub]]
    worst = min((stat(rows, lambda r, n=k.split("_x")[0][len("resize_"):]: others_iou(r, "iou_", n))[0]
                 for k, rows in runs.items() if k.startswith("resize_")), default=float("nan"))
    text += ["## Table 4: resizing attacks, ε = 0.04\n\nIoU x 100 of the resized structure's prediction with "
             "its target (the structure scaled about its centroid; the pixels it leaves become what lies "
             "under them in the other structures' ground truth, else background). First column: the clean "
             f"prediction against the ground truth. Lowest mean IoU x 100 of the other structures with their "
             f"target over all resizing runs: ours {worst * 100:.1f}, paper >= {paper.HEART_TABLE4_OTHERS_MIN}.\n\n",
             _table(["structure", "clean"] + [f"x{f}" for f in paper.RESIZE_FACTORS], lines), "\n"]

    lines = []
    for key, label in (("heart_small_wb_eps0.04", "attack all"), ("region_heart_only", "heart only"),
                       ("region_receptive_field", "heart only, receptive field"),
                       ("region_bbox", "heart only, heart bounding box")):
        rows = runs.get(key)
        lines.append([label, cell(rows, column("iou_heart")), cell(rows, lambda r: others_iou(r, "gt_iou_")),
                      cell(rows, column("l2"), 1, 2)])
    text += ["## Figure 2: where the noise goes, small heart symbol, ε = 0.04\n\n\"Heart only\" optimises the "
             "heart class alone; the last two restrict the noise to the receptive field of the heart's pixels "
             "(187 px of the 256 grid) or to the heart's bounding box. The paper shows these qualitatively: the "
             "receptive-field restriction changes nothing, the bounding box disrupts the heart symbol.\n\n",
             _table(["setting", "heart IoU x 100 with the symbol", "others' IoU x 100 with ground truth", "L2"],
                    lines), "\n"]
    text += [f"![{Path(f).stem}]({Path(f).name})\n\n" for f in figures]
    return "".join(text)


def heart_curves(runs: dict[str, Rows], path: Path) -> Path:
    """IoU against ε (Tables 1 and 2) and against the resizing factor (Table 4), ours solid, paper dashed."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))

    def curve(ax, key: Callable[[float], str], value, xs, published, label, colour):
        pts = [(x, stat(runs[key(x)], value)[0] * 100) for x in xs if key(x) in runs]
        if pts:
            ax.plot(*zip(*pts), "o-", color=colour, label=label)
        ax.plot(xs, published, "s--", color=colour, alpha=0.5)

    for box, colour in (("white-box", "C0"), ("black-box", "C1")):
        curve(axes[0], lambda e, b=box[0] + "b": f"untargeted_{b}_eps{e}", column("adv_miou_gt"), paper.EPS,
              paper.HEART_TABLE1[box], box, colour)
        for size, colour2 in (("small", colour), ("large", "C2" if box == "white-box" else "C3")):
            curve(axes[1], lambda e, s=size, b=box[0] + "b": f"heart_{s}_{b}_eps{e}", column("iou_heart"),
                  paper.EPS, paper.HEART_TABLE2[("target", size, box)], f"{size}, {box}", colour2)
    for i, name in enumerate(paper.HEART_TABLE4):
        curve(axes[2], lambda f, n=name: f"resize_{n}_x{f}", column(f"iou_{name}"), paper.RESIZE_FACTORS,
              paper.HEART_TABLE4[name][1:], name.replace("_", " "), f"C{i}")
    titles = ("Table 1: untargeted, mean IoU with ground truth", "Table 2: heart IoU with the symbol",
              "Table 4: resized structure's IoU with its target, ε = 0.04")
    for ax, title, xlabel in zip(axes, titles, ("ε", "ε", "resizing factor")):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("IoU x 100")
        ax.set_ylim(-2, 102)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax in axes[:2]:
        ax.set_xscale("log", base=2)
    fig.suptitle("Bortsova et al. 2021 on the phantoms: ours (solid) and the paper (dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def region_figure(example: dict[str, torch.Tensor], path: Path) -> Path:
    """The paper's Figure 2: noise (top) and adversarial image with the predicted heart (bottom), per setting."""
    settings = ("clean", "attack_all", "heart_only", "receptive_field", "bbox")
    fig, axes = plt.subplots(2, len(settings), figsize=(3.2 * len(settings), 6.6))
    image = example["image"][0].numpy()
    for j, name in enumerate(settings):
        adv = image if name == "clean" else example[f"{name}_adv"][0].numpy()
        pred = example["clean_pred" if name == "clean" else f"{name}_pred"].reshape(image.shape).numpy()
        axes[0, j].imshow(adv - image, cmap="seismic", vmin=-0.04, vmax=0.04)
        axes[1, j].imshow((adv + 1) / 2, cmap="gray", vmin=0, vmax=1)
        axes[1, j].contour((example["target"][0].numpy() == 3).astype(float), levels=[0.5], colors=["#ffc400"],
                           linestyles="--", linewidths=1.2)
        for cls in range(1, 6):
            mask = (pred == cls).astype(float)
            if mask.any():
                axes[1, j].contour(mask, levels=[0.5], colors=["#1f5fff" if cls == 3 else f"C{cls + 1}"],
                                   linewidths=1)
        axes[0, j].set_title({"bbox": "heart bounding box"}.get(name, name.replace("_", " ")))
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle("Figure 2 on the first CXR test phantom, ε = 0.04: noise (top, ±0.04), prediction (heart blue, "
                 "symbol dashed yellow)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- Wang and Xu


@functools.cache
def parameter_count(architecture: str) -> int:
    return sum(p.numel() for p in build_network(architecture, 1, 6).parameters())


def _architectures(runs: dict[str, Rows]) -> dict[str, Rows]:
    """Each architecture with FGSM runs, smallest first, with the rows of one of its runs (for clean values)."""
    found = {}
    for arch in ARCHITECTURES:
        keys = [k for k in runs if any(k.startswith(f"fgsm_{arch}_{loss}_") for loss in FGSM_LOSSES)]
        if keys:
            found[arch] = runs[keys[0]]
    return dict(sorted(found.items(), key=lambda item: parameter_count(item[0])))


def wang_xu_markdown(runs: dict[str, Rows], preamble: str, mode, figure: str) -> str:
    """Network sizes with clean IoU, then targeted and untargeted FGSM per architecture, loss and ε."""
    archs = _architectures(runs)
    lines = []
    for arch, some in archs.items():
        lines.append([arch, f"{parameter_count(arch) / 1e6:.2f} M", cell(some, column("clean_miou_gt")),
                      cell(some, column("clean_iou_heart"))])
    text = [preamble, "FGSM (one step of size ε) against three members of the U-Net family, each trained by "
            "the same config (`configs/train.yaml --architecture ...`, loss: negative mean soft IoU plus "
            "cross-entropy; docs/training.md) on the CXR phantoms. Targeted: the small heart symbol, \"attack all\" "
            "(success = heart IoU with the symbol). Untargeted: away from the ground truth (success = low mean IoU "
            "with it). Attack losses: cross-entropy (ce) and soft IoU, the two terms of the training loss, and soft "
            "Dice, which is not one of them.\n\n",
            "## Networks\n\n", _table(["architecture", "parameters", "clean mean IoU x 100", "clean heart IoU x 100"],
                                      lines), "\n"]
    for targeted, title, col in ((True, "targeted: heart IoU x 100 with the symbol (higher = attack succeeded)",
                                  column("iou_heart")),
                                 (False, "untargeted: mean IoU x 100 with the ground truth (lower = attack succeeded)",
                                  column("adv_miou_gt"))):
        kind = "targeted" if targeted else "untargeted"
        lines = [[arch, loss] + [cell(runs.get(f"fgsm_{arch}_{loss}_{kind}_eps{e}"), col) for e in mode.fgsm_eps]
                 for arch in archs for loss in FGSM_LOSSES]
        text += [f"## FGSM, {title}\n\n", _table(["architecture", "attack loss"] + [f"ε = {e}" for e in mode.fgsm_eps],
                                                 lines), "\n"]
    text.append(f"![{Path(figure).stem}]({Path(figure).name})\n")
    return "".join(text)


def wang_xu_figure(runs: dict[str, Rows], mode, path: Path) -> Path:
    """Untargeted FGSM success (drop of mean IoU) against parameter count, one line per loss and ε."""
    archs = list(_architectures(runs))
    sizes = [parameter_count(a) / 1e6 for a in archs]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, kind, value, ylabel in (
            (axes[0], "untargeted", lambda r: r["clean_miou_gt"] - r["adv_miou_gt"], "drop of mean IoU x 100"),
            (axes[1], "targeted", column("iou_heart"), "heart IoU x 100 with the symbol")):
        for i, loss in enumerate(FGSM_LOSSES):
            for e, marker in zip(mode.fgsm_eps, "o^sv"):
                keys = [f"fgsm_{a}_{loss}_{kind}_eps{e}" for a in archs]
                if all(k in runs for k in keys):
                    ax.plot(sizes, [stat(runs[k], value)[0] * 100 for k in keys], marker + "-", color=f"C{i}",
                            label=f"{loss}, ε = {e}")
        ax.set_xticks(sizes, [f"{a}\n{s:.2f} M" for a, s in zip(archs, sizes)], fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(f"FGSM, {kind}", fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle("Wang and Xu: does the network's size predict FGSM success? (CXR phantoms)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- all files


def write_results(measured: dict[str, dict[str, Rows]], results: Path, *, mode, cases: int, command: str,
                  minutes: float, example: dict | None) -> list[Path]:
    """Write each results file present in ``measured`` (and its figures) into ``results``; return the paths."""
    results.mkdir(parents=True, exist_ok=True)
    written = []
    if "asma" in measured:
        pre = _preamble("ASMA (Ozbulak et al., MICCAI 2019) on the phantoms", command, cases, mode, minutes,
                        "the fundus and dermoscopy test splits")
        written.append(results / "asma.md")
        written[-1].write_text(asma_markdown(measured["asma"], pre, mode.asma_steps))
    if "heart_attack" in measured:
        runs = measured["heart_attack"]
        figures = [heart_curves(runs, results / "heart_attack_curves.png")]
        if example is not None:
            figures.append(region_figure(example, results / "heart_attack_figure2.png"))
        pre = _preamble("Adversarial heart attack (Bortsova et al. 2021) on the phantoms", command, cases, mode,
                        minutes, "the CXR test split (the paper: 20)")
        written += [*figures, results / "heart_attack.md"]
        written[-1].write_text(heart_markdown(runs, pre, [str(f) for f in figures]))
    if "wang_xu" in measured:
        runs = measured["wang_xu"]
        figure = wang_xu_figure(runs, mode, results / "wang_xu.png")
        pre = _preamble("FGSM on the U-Net family (Wang and Xu) on the CXR phantoms", command, cases, mode, minutes,
                        "the CXR test split")
        written += [figure, results / "wang_xu.md"]
        written[-1].write_text(wang_xu_markdown(runs, pre, mode, str(figure)))
    return written
