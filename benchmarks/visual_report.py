"""Visual report: before/after renders with contact heat maps for a few synthetic grasps (SYNTHETIC data).

For each grasp one PNG with four rows (ground truth, perturbed input, the contact target on the input hand, refined),
each row three views; the ground truth, input and refined hands are coloured by the toolkit's contact label (red = a
vertex within 1 cm of the object), the target row by the target's contact probability, and a colour bar says so.
Histograms of the per-frame change (refined − input) of MPJPE, penetration depth and intersection volume go beside
them as PNGs, and ``index.html`` / ``index.md`` show every image with the per-grasp figures.

    python benchmarks/visual_report.py --n 4 --preset fast --contact oracle --out report/
"""

from __future__ import annotations

import argparse
import html
import time
from pathlib import Path

import numpy as np

#: The per-frame change histograms: (file stem, GraspScores field, title, axis caption).
HISTOGRAMS = (
    ("change_mpjpe", "mpjpe_mm", "MPJPE change per frame", "refined - input MPJPE, mm"),
    ("change_penetration", "penetration_mm", "penetration change per frame", "refined - input max penetration, mm"),
    ("change_intersection", "intersection_cm3", "intersection volume change per frame",
     "refined - input intersection volume, cm3"),
)  # fmt: skip


def _write_index(out: Path, title: str, figures: list[tuple[Path, str]], histograms: list[Path]) -> None:
    """``index.md`` (Markdown with image links) and ``index.html`` (self-contained page but for the PNGs beside it)."""
    lines = [f"# {title}", "", "## Per-frame change (refined - input)", ""]
    lines += [f"![{path.stem}]({path.name})" for path in histograms]
    lines += ["", "## Grasps", ""]
    for path, caption in figures:
        lines += [f"### {path.stem}", "", caption, "", f"![{path.stem}]({path.name})", ""]
    (out / "index.md").write_text("\n".join(lines) + "\n")
    body = [f"<h1>{html.escape(title)}</h1>", "<h2>Per-frame change (refined &minus; input)</h2>", "<div>"]
    body += [f'<img src="{path.name}" alt="{path.stem}">' for path in histograms]
    body += ["</div>", "<h2>Grasps</h2>"]
    for path, caption in figures:
        body += [f"<h3>{path.stem}</h3>", f"<p>{html.escape(caption)}</p>"]
        body += [f'<img src="{path.name}" alt="{path.stem}">']
    page = ("<!doctype html>\n<html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1300px} img{max-width:100%;margin:4px;"
            "vertical-align:top}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")  # fmt: skip
    (out / "index.html").write_text(page)


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4, help="number of grasps (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--noise", default="hflnet-like", choices=["hflnet-like", "contactopt-aug"],
                        help="perturbation model of the inputs (default: %(default)s)")  # fmt: skip
    parser.add_argument("--preset", default="fast", help="optimizer preset (default: %(default)s)")
    parser.add_argument(
        "--contact",
        default="oracle",
        choices=["oracle", "geometric"],
        help="contact target: the ground truth's labels or the input's own (default: %(default)s)",
    )
    parser.add_argument("--out", default="visual_report", help="output folder (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar while optimising")
    args = parser.parse_args(argv)

    from haco_grasp.data.perturb import perturb_grasps
    from haco_grasp.data.synthetic import generate_grasps
    from haco_grasp.evaluation import score_grasps
    from haco_grasp.geometry.labels import hand_contact_labels
    from haco_grasp.hand import load_mano, synthetic_mano_root
    from haco_grasp.optimize import get_config, optimize_grasp
    from haco_grasp.viz.figures import histogram_image
    from haco_grasp.viz.render import save_png
    from haco_grasp.viz.report import save_refinement_figure

    started = time.perf_counter()
    layer = load_mano(root=synthetic_mano_root(), use_pca=False, flat_hand_mean=True)
    print(f"[visual report] generating and perturbing {args.n} synthetic grasps ({args.noise}) ...", flush=True)
    truth = generate_grasps(args.n, seed=args.seed, progress=False)
    inputs = perturb_grasps(truth, model=args.noise, seed=args.seed + 1)
    if args.contact == "oracle":
        targets = np.stack([g.hand_contact for g in truth])
    else:
        targets = np.stack([hand_contact_labels(g.hand_verts, g.obj_verts, g.obj_faces) for g in inputs]).astype(float)
    config = get_config(args.preset)
    print(f"[visual report] optimising {args.n} grasps: preset {args.preset}, {config.n_restarts} restarts x "
          f"{config.n_iter} iterations, {args.contact} target ...", flush=True)  # fmt: skip
    result = optimize_grasp(inputs, target_hand_contact=targets, config=config, layer=layer,
                            progress=not args.no_progress)  # fmt: skip
    refined = result.to_grasps(inputs)
    print(f"[visual report] scoring and rendering ({time.perf_counter() - started:.0f} s so far) ...", flush=True)
    before, after = score_grasps(inputs, truth), score_grasps(refined, truth)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    title = f"Visual report (SYNTHETIC data): preset {args.preset}, contact {args.contact}, noise {args.noise}"
    figures, paths = [], []
    for i, (gt, grasp_in, grasp_out) in enumerate(zip(truth, inputs, refined, strict=True)):
        path = save_refinement_figure(
            out / f"grasp_{i:02d}.png",
            grasp_in,
            grasp_out,
            targets[i],
            truth=gt,
            target_label=f"{args.contact} target",
            refined_label=f"refined ({args.preset})",
        )
        paths.append(path)
        caption = (
            f"{gt.object_name} {gt.grasp_type}: IV {before.intersection_cm3[i]:.2f} → {after.intersection_cm3[i]:.2f} "
            f"cm³, penetration {before.penetration_mm[i]:.1f} → {after.penetration_mm[i]:.1f} mm, MPJPE "
            f"{before.mpjpe_mm[i]:.1f} → {after.mpjpe_mm[i]:.1f} mm, contact F1 {before.contact_f1_per_frame[i]:.2f} → "
            f"{after.contact_f1_per_frame[i]:.2f} (contact = within 1 cm)"
        )
        figures.append((path, caption))
        print(f"[visual report] {i + 1}/{args.n} {path.name}: {caption}", flush=True)
    histograms = []
    for stem, key, name, axis in HISTOGRAMS:
        change = np.asarray(getattr(after, key)) - np.asarray(getattr(before, key))
        histograms.append(save_png(histogram_image(change, f"{name} ({args.preset}, {args.contact} target)", axis),
                                   out / f"{stem}.png"))  # fmt: skip
    _write_index(out, title, figures, histograms)
    print(f"[visual report] wrote {out / 'index.html'} and {out / 'index.md'} ({len(paths)} grasps, "
          f"{len(histograms)} histograms)")  # fmt: skip
    return paths


if __name__ == "__main__":
    main()
