"""``python -m bench.profile FILE...``: where the time goes in py-spy's collapsed stacks.

For each file, the share of samples in which each of the project's functions (and the libraries'
heaviest frames) is on the stack, heaviest first: what to look at before changing anything.
"""

import sys
from collections import Counter
from pathlib import Path


def shares(path: Path, top: int = 25) -> list[tuple[str, float]]:
    inclusive: Counter = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        total += samples
        # Each frame once per stack, however often it recurses.
        for frame in {frame.split(" (")[0] + " " + _where(frame) for frame in stack.split(";")}:
            inclusive[frame] += samples
    return [(frame, samples / total) for frame, samples in inclusive.most_common(top)]


def _where(frame: str) -> str:
    inside = frame.partition(" (")[2].rstrip(")")
    path = inside.split(":")[0]
    return "(" + "/".join(Path(path).parts[-2:]) + ")"


def main(paths: list[str]) -> None:
    for name in paths:
        print(f"== {name}")
        for frame, share in shares(Path(name)):
            print(f"{share:6.1%}  {frame}")


if __name__ == "__main__":
    main(sys.argv[1:])
