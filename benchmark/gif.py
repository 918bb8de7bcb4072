"""Turn an evaluation video into a small looping GIF for the README.

    python ppo_continuous.py --eval-checkpoint runs/<run>/model.pt --eval-episodes 1 --eval-deterministic \\
        --capture-video
    python -m benchmark.gif runs/<run>/eval-videos/rl-video-episode-0.mp4 docs/pendulum.gif --width 240 --fps 25

moviepy reads the MP4 that gymnasium's RecordVideo wrote (with the ffmpeg that imageio-ffmpeg ships) and
writes the GIF; --seconds keeps the start of long episodes so the file stays small.
"""

import argparse
import sys
from pathlib import Path


def make_gif(video: Path, gif: Path, width: int, fps: int, seconds: float) -> int:
    """Write `gif` from the first `seconds` of `video`, scaled to `width` pixels; returns its frame count."""
    from moviepy import VideoFileClip

    with VideoFileClip(str(video)) as clip:
        clip = clip.subclipped(0, min(seconds, clip.duration)).resized(width=width)
        gif.parent.mkdir(parents=True, exist_ok=True)
        tmp = gif.with_name(gif.name + ".tmp.gif")
        clip.write_gif(str(tmp), fps=fps, logger=None)
        tmp.replace(gif)  # atomic: a half-written GIF never replaces a good one
    from PIL import Image

    with Image.open(gif) as image:  # the GIF writer merges identical consecutive frames
        return image.n_frames


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", type=Path, help="an MP4 written by --capture-video")
    parser.add_argument("gif", type=Path, help="the GIF to write")
    parser.add_argument("--width", type=int, default=240, help="width in pixels (height keeps the aspect ratio)")
    parser.add_argument("--fps", type=int, default=25, help="frames per second of the GIF")
    parser.add_argument("--seconds", type=float, default=10.0, help="keep at most this many seconds from the start")
    args = parser.parse_args(argv)
    if not args.video.is_file():
        print(f"benchmark.gif: error: no video at {args.video}", file=sys.stderr)
        return 2
    if args.width <= 0 or args.fps <= 0 or args.seconds <= 0:
        print("benchmark.gif: error: --width, --fps and --seconds must be positive", file=sys.stderr)
        return 2
    frames = make_gif(args.video, args.gif, args.width, args.fps, args.seconds)
    print(f"wrote {args.gif} ({frames} frames, {args.gif.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
