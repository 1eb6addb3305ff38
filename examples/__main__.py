"""The tour: ``python -m examples`` trains every model on embedded data, one after the other.

Each stop is a shorter run of one example (fewer steps than its default, so the whole tour
takes four to five minutes on two CPU cores); each writes its checkpoint, metrics and figures under
``runs/<name>/``. At the end a table shows what every model reached. ``--quick`` makes every
stop a smoke run of a few steps (written under ``runs/<name>-quick/``); ``--only NAME`` runs one
stop. Ctrl-C ends the tour after the current example has written its checkpoint.

    python -m examples                 # the whole tour
    python -m examples --only vit      # one stop
"""

import argparse
import importlib
import time

# (name, example module, arguments of the short run, metric to report, what it measures, and
# on which test data in the short run; a --quick run may test on fewer, as its output says)
TOUR = [
    ("mlp_digits", "examples.mlp_digits", ["--steps", "800"],
     "test_accuracy", "test accuracy", "359 held-out 8x8 digits"),
    ("transformer", "examples.translate", ["--steps", "400", "--eval-every", "400"],
     "greedy_exact_match", "exact match (greedy)", "German->English test numbers"),
    ("vit", "examples.vit_classify", ["--dataset", "digits", "--steps", "600"],
     "test_accuracy", "test accuracy", "359 held-out 8x8 digits"),
    ("swin", "examples.swin_classify", ["--dataset", "mnist_5k", "--steps", "300"],
     "test_accuracy", "test accuracy", "1,000 held-out MNIST digits (32x32)"),
    ("swin_segment", "examples.swin_segment", ["--steps", "600", "--train-images", "8000"],
     "test_miou", "mean IoU", "shapes segmentation, 500 held-out images"),
    ("image_gpt", "examples.image_gpt", ["--steps", "500"],
     "best_probe", "best linear probe accuracy (AR pre-training)", "359 held-out 8x8 digits"),
    ("clip", "examples.clip", ["--steps", "400", "--eval-every", "400"],
     "held_out_accuracy", "zero-shot accuracy", "30 colour-shape names, held-out compositions"),
]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m examples", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke runs of a few steps")
    parser.add_argument("--only", choices=[name for name, *_ in TOUR], action="append",
                        help="run only this stop (repeatable; default: every stop)")
    args = parser.parse_args(argv)
    rows = []
    for name, module, run_args, metric, what, test_data in TOUR:
        if args.only and name not in args.only:
            continue
        argv = ["--quick"] if args.quick else run_args
        print(f"\n=== {name}: python -m {module} {' '.join(argv)} ===", flush=True)
        start = time.perf_counter()
        result = importlib.import_module(module).main(argv)
        if "stopped_at" in result:  # Ctrl-C: the example wrote its checkpoint
            print(f"tour stopped during {name}; continue it with python -m {module} "
                  f"{' '.join(argv)} --resume")
            break
        meaning = f"{what}, {'the test set in its line above' if args.quick else test_data}"
        rows.append((name, result[metric], meaning, time.perf_counter() - start))

    if args.quick:
        print("\nsmoke runs (--quick): a few steps on a small part of each data set, so the "
              "figures below show that every stop runs, not what it learns")
    print("\n| model | reached | metric | seconds |\n|---|---|---|---|")
    for name, value, meaning, seconds in rows:
        print(f"| {name} | {value:.4f} | {meaning} | {seconds:.0f} |")
    print(f"\ntotal: {sum(r[3] for r in rows):.0f} s; figures and checkpoints under runs/")
    return rows


if __name__ == "__main__":
    main()
