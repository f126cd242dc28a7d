"""Draws the training curves of log.csv as an SVG (no plotting library needed).

  python plot_log.py OUT/ckpt/log.csv docs/demo-model-training.svg

Left: the language-model loss over all steps (stages A and C). Right: the indexer's KL loss in the
dense warm-up (stage B) and the sparse stage (C).
"""
import csv
import sys


def polyline(points, x0, y0, w, h, xr, yr, color):
    (xa, xb), (ya, yb) = xr, yr
    pts = " ".join(f"{x0 + (x - xa) / (xb - xa) * w:.1f},{y0 + h - (min(max(y, ya), yb) - ya) / (yb - ya) * h:.1f}"
                   for x, y in points)
    return f'<polyline fill="none" stroke="{color}" stroke-width="1.2" points="{pts}"/>'


def panel(title, series, x0, xr, yr, ylabel):
    w, h, y0 = 380, 240, 40
    out = [f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#888"/>',
           f'<text x="{x0 + w / 2}" y="25" text-anchor="middle" font-size="14">{title}</text>',
           f'<text x="{x0 - 8}" y="{y0 + 10}" text-anchor="end" font-size="11">{yr[1]:g}</text>',
           f'<text x="{x0 - 8}" y="{y0 + h}" text-anchor="end" font-size="11">{yr[0]:g}</text>',
           f'<text x="{x0}" y="{y0 + h + 16}" font-size="11">step {xr[0]}</text>',
           f'<text x="{x0 + w}" y="{y0 + h + 16}" text-anchor="end" font-size="11">{xr[1]}</text>',
           f'<text x="{x0 + w / 2}" y="{y0 + h + 32}" text-anchor="middle" font-size="11">{ylabel}</text>']
    for i, (name, pts, color) in enumerate(series):
        out.append(polyline(pts, x0, y0, w, h, xr, yr, color))
        out.append(f'<text x="{x0 + w - 6}" y="{y0 + 16 + 14 * i}" text-anchor="end" font-size="11" fill="{color}">{name}</text>')
    return out


def smooth(pts, k=10):
    out = []
    for i in range(len(pts)):
        win = pts[max(0, i - k + 1): i + 1]
        out.append((pts[i][0], sum(y for _, y in win) / len(win)))
    return out


def main():
    rows = list(csv.DictReader(open(sys.argv[1])))
    lm = [(int(r["step"]), float(r["lm_loss"])) for r in rows if r["stage"] in "AC"]
    kl_b = [(int(r["step"]), float(r["kl"])) for r in rows if r["stage"] == "B"]
    kl_c = [(int(r["step"]), float(r["kl"])) for r in rows if r["stage"] == "C"]
    last = int(rows[-1]["step"])
    lm_a = [p for p in lm if p[0] <= (kl_b[0][0] if kl_b else last)]
    lm_c = [p for p in lm if kl_b and p[0] > kl_b[-1][0]]
    ymax_kl = max(y for _, y in kl_b + kl_c) if kl_b or kl_c else 1
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="900" height="330" font-family="sans-serif">',
           '<rect width="100%" height="100%" fill="white"/>']
    svg += panel("language-model loss (10-step mean)", [("A dense", smooth(lm_a), "#1f77b4"),
                                                       ("C sparse", smooth(lm_c), "#d62728")],
                 60, (1, last), (0, 3), "assistant tokens, nats")
    svg += panel("indexer KL to the attention distribution", [("B dense warm-up", kl_b, "#2ca02c"),
                                                             ("C sparse (selected keys)", smooth(kl_c), "#9467bd")],
                 500, (kl_b[0][0] if kl_b else 1, last), (0, round(ymax_kl + 0.5)), "nats per query")
    svg.append("</svg>")
    open(sys.argv[2], "w").write("\n".join(svg))


if __name__ == "__main__":
    main()
