"""The README's pictures: the pipeline diagram and a strip of frames from `daps command`.

    python docs/make_pipeline_figure.py            # writes docs/pipeline.png and docs/command_strip.png

docs/pipeline.png: text -> high-level prior -> 64 codes -> motion VAE decoder -> low-level PPO
policy -> MuJoCo, with the robot's own motion fed back as the high level's history and the
`--kinematic` path that plays the decoded motion without physics.
docs/command_strip.png: evenly spaced frames of docs/command_walk_forward.mp4 (made by
`daps command "walk forward" --seconds 10 --out docs/command_walk_forward.mp4` on the
shipped models: the sampling MPC balancing the robot); skipped when that video is absent.
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

DOCS = Path(__file__).resolve().parent

# (x centre, title, subtitle, face colour)
BOXES = [
    (0.9, "text prompt", '"walk forward"\n"turn left" ...', "#f2f2f2"),
    (3.0, "high level", "AR transformer prior\nmodels/highlevel.pt", "#dbe9f6"),
    (5.1, "64 codes", "1024-word vocabulary\nper 32 frames (640 bits)", "#fdf1d6"),
    (7.2, "motion VAE", "decoder (DAPS-trained)\nmodels/motion_vae.pt", "#dbe9f6"),
    (9.3, "low level", "PPO tracking policy\nmodels/lowlevel.pt", "#dbe9f6"),
    (11.4, "MuJoCo", "Unitree H1\n500 Hz physics", "#e3f1df"),
]
WIDTH, HEIGHT, Y = 1.75, 1.1, 1.6


def pipeline_figure(out: Path) -> None:
    fig, ax = plt.subplots(figsize=(12.4, 3.0), dpi=110)
    ax.set_xlim(-0.1, 12.4)
    ax.set_ylim(0.2, 2.85)
    ax.axis("off")
    for x, title, sub, colour in BOXES:
        ax.add_patch(FancyBboxPatch((x - WIDTH / 2, Y - HEIGHT / 2), WIDTH, HEIGHT,
                                    boxstyle="round,pad=0.03,rounding_size=0.12",
                                    facecolor=colour, edgecolor="#444444", linewidth=1.2))
        ax.text(x, Y + 0.22, title, ha="center", va="center", fontsize=11.5, weight="bold")
        ax.text(x, Y - 0.18, sub, ha="center", va="center", fontsize=8.3, color="#333333")
    for (x0, *_), (x1, *_) in zip(BOXES, BOXES[1:]):
        ax.add_patch(FancyArrowPatch((x0 + WIDTH / 2, Y), (x1 - WIDTH / 2, Y), arrowstyle="-|>",
                                     mutation_scale=14, linewidth=1.4, color="#444444"))
    grey = dict(color="#777777", linewidth=1.1)
    # the robot's achieved motion is the high level's history for the next segment
    x_robot, x_high, low = BOXES[5][0], BOXES[1][0], 0.55
    ax.plot([x_robot, x_robot, x_high], [Y - HEIGHT / 2, low, low], linestyle="--", **grey)
    ax.add_patch(FancyArrowPatch((x_high, low), (x_high, Y - HEIGHT / 2), arrowstyle="-|>",
                                 mutation_scale=14, linestyle="--", **grey))
    ax.text((x_high + x_robot) / 2, low - 0.2, "the robot's motion: the history for the next 32-frame segment",
            ha="center", va="center", fontsize=8.5, color="#555555")
    # --kinematic: the decoded motion is played without physics
    x_vae, high = BOXES[3][0], 2.55
    ax.plot([x_vae, x_vae, x_robot], [Y + HEIGHT / 2, high, high], linestyle=":", **grey)
    ax.add_patch(FancyArrowPatch((x_robot, high), (x_robot, Y + HEIGHT / 2), arrowstyle="-|>",
                                 mutation_scale=14, linestyle=":", **grey))
    ax.text((x_vae + x_robot) / 2, high + 0.14, "--kinematic: the decoded joint angles, played without physics",
            ha="center", va="center", fontsize=8.5, color="#555555")
    fig.tight_layout(pad=0.2)
    fig.savefig(out)
    plt.close(fig)


def command_strip(video: Path, out: Path, frames: int = 6) -> bool:
    """Evenly spaced frames of `video` side by side; False when the video is absent."""
    if not video.is_file():
        return False
    import imageio

    with imageio.get_reader(video) as reader:
        images = [frame for frame in reader]  # list(reader) asks len(), which is inf for a stream
    picks = [round(i * (len(images) - 1) / (frames - 1)) for i in range(frames)]
    fps = 30.0
    fig, axes = plt.subplots(1, frames, figsize=(2.2 * frames, 2.0), dpi=100)
    for ax, i in zip(axes, picks):
        ax.imshow(images[i])
        ax.set_title(f"{i / fps:.2f} s", fontsize=9)
        ax.axis("off")
    fig.tight_layout(pad=0.2)
    fig.savefig(out)
    plt.close(fig)
    return True


if __name__ == "__main__":
    pipeline_figure(DOCS / "pipeline.png")
    print(DOCS / "pipeline.png")
    if command_strip(DOCS / "command_walk_forward.mp4", DOCS / "command_strip.png"):
        print(DOCS / "command_strip.png")
