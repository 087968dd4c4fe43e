"""`distillery` / `python -m pipelines`: a thin layer mapping flags to the library.

Heavy imports (torch, transformers) happen inside the commands that need them, so `validate` and
`keys` answer in well under a second.

Why one module: every subcommand lives here so `distillery --help` and this file list the same
thing (the layout issue asked for one CLI); each command is a few lines handing off to a package.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path

from modelkit.errors import InputError
from pipelines.core import progress, quiet
from pipelines.core.errors import DistilleryError, file_error_message


def _overrides(args: argparse.Namespace) -> list[str]:
    return [item for group in (args.set or []) for item in group]


SET_HELP = (
    "override recipe keys, e.g. --set teacher.epochs=1 data.max_train_samples=500; the list "
    "ends at the first word without '=', so the recipe may follow it"
)


def _add_recipe_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="path to a YAML recipe, e.g. recipes/demo.yaml")
    parser.add_argument("--set", action="append", nargs="+", metavar="KEY=VALUE", help=SET_HELP)
    _add_verbose(parser)


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: a subcommand's default must not overwrite `distillery --verbose run ...`
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show third-party warnings and notices too (hidden by default)",
    )


def _end_set_lists(argv: list[str]) -> list[str]:
    """`--set a=1 b=2 recipe.yaml` → `--set=a=1 --set=b=2 recipe.yaml`.

    argparse's nargs="+" takes every word up to the next flag, the recipe included, and then
    reports the recipe missing; written `--set=VALUE`, each takes exactly one word. A --set
    whose first word has no '=' is left as it was, for the recipe loader's KEY=VALUE message."""
    out: list[str] = []
    in_set = False
    for index, word in enumerate(argv):
        if word == "--set" and "=" in (argv[index + 1 : index + 2] or [""])[0]:
            in_set = True
            continue
        if in_set and "=" in word and not word.startswith("-"):
            out.append(f"--set={word}")
            continue
        in_set = False
        out.append(word)
    return out


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("distillery")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed; run `make install`)"


def cmd_validate(args: argparse.Namespace) -> int:
    """The recipe's keys and values, then what can be checked from model configs alone."""
    from pipelines.core.config import load_recipe

    recipe = load_recipe(args.recipe, _overrides(args))
    from pipelines.run.preflight import preflight_models

    preflight_models(recipe)
    from pipelines.run.preflight import preflight_data

    preflight_data(recipe)  # the data's columns and labels against the task section, all at once
    print(
        f"{args.recipe}: valid (run '{recipe.name}', teacher {recipe.teacher.model or 'from config'}, "
        f"data {recipe.data.source}, student {recipe.student.init})"
    )
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from pipelines.run.recipe_init import init_recipe

    _, said = init_recipe(args.data, args.teacher, args.name, args.output)
    print(said)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from pipelines.core.config import load_recipe
    from pipelines.run.runner import run_pipeline

    started = time.time()
    recipe = load_recipe(args.recipe, _overrides(args))
    manifests = run_pipeline(
        recipe, Path(args.runs_dir), target=args.stage, force=args.force, dry_run=args.dry_run
    )
    if args.stage is None and not args.dry_run:  # a full run: what to ship and where it is
        from pipelines.run.summary import closing_summary

        run_path = Path(args.runs_dir) / recipe.name
        print("\n".join(closing_summary(manifests, run_path, time.time() - started)))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """The pipeline with `search.enabled` on: the pick is distilled in full and shipped."""
    from pipelines.core.config import load_recipe
    from pipelines.run.runner import run_pipeline

    recipe = load_recipe(args.recipe, [*_overrides(args), "search.enabled=true"])
    target = "search" if args.only else None
    manifests = run_pipeline(recipe, Path(args.runs_dir), target=target, dry_run=args.dry_run)
    found = manifests.get("search") or {}
    if found.get("chosen"):
        folder = Path(args.runs_dir) / recipe.name / "search"
        print(
            f"search: chose {found['chosen']['id']} ({found['chosen']['why']}); "
            f"candidates: {folder / 'candidates.md'}"
        )
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from pipelines.core.config import Recipe
    from pipelines.core.schema import key_paths

    for path, kind, default, help_text in key_paths(Recipe):
        print(f"{path:34} {kind:40} default {default!r:24} {help_text}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    """Print the [CLS] vector (last_hidden_state[:, 0]) of each --text, one JSON list per line."""
    from pipelines.core.config import load_recipe
    from pipelines.core.runs import RunDir, verify_files

    recipe = load_recipe(args.recipe, _overrides(args))
    _check_texts(args.text)
    run = RunDir(Path(args.runs_dir), recipe.name)
    torch_dirs = {"student": run.stage("distill"), "teacher": run.stage("teacher")}
    onnx_dirs = {f"{k}-onnx": run.stage("export") / f"{k}-onnx" / "features" for k in torch_dirs}
    if args.artifact in torch_dirs:
        from export.features import cls_vector_torch

        run.require_manifest("distill" if args.artifact == "student" else "teacher")
        vectors = cls_vector_torch(torch_dirs[args.artifact], args.text, recipe.data.max_length)
    elif args.artifact in onnx_dirs:
        folder = onnx_dirs[args.artifact]
        # Served only from a finished export that recorded this encoder (its manifest names and
        # hashes the file): a model.onnx alone may be a cut-short or foreign write.
        manifest = run.require_manifest("export")
        rel = (folder / "model.onnx").relative_to(run.stage("export")).as_posix()
        if rel not in (manifest.get("files") or {}):
            raise DistilleryError(
                f"{folder}/model.onnx: not an encoder export of the finished export stage; "
                "rerun it with --set export.feature_extraction=true."
            )
        verify_files(run.stage("export"), "export", {"files": {rel: manifest["files"][rel]}})
        from export.features import cls_vector_onnx

        vectors = cls_vector_onnx(folder, args.text, recipe.data.max_length)
    else:
        allowed = ", ".join([*torch_dirs, *onnx_dirs])
        raise DistilleryError(f"--artifact {args.artifact!r}: unknown. Allowed values: {allowed}.")
    for vector in vectors:
        print(json.dumps([round(float(x), 6) for x in vector]))
    return 0


def _check_texts(texts: list[str]) -> None:
    """Each --text is UTF-8 and not blank: Python keeps argv bytes that are not UTF-8 as lone
    surrogates, which the tokenizer would fail on with a traceback."""
    for number, text in enumerate(texts, 1):
        if not text.strip():
            raise DistilleryError(f"--text #{number} is empty; give a sentence to embed.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            byte = ord(text[exc.start]) - 0xDC00
            raise DistilleryError(
                f"--text #{number}: byte 0x{byte:02x} at character {exc.start + 1} is not UTF-8; "
                "pass UTF-8 text (check the terminal's or the script's encoding)."
            ) from None


def cmd_bundle(args: argparse.Namespace) -> int:
    """Build runs/<name>/bundle/ (the bundle stage and what it needs), or --verify a bundle."""
    from pipelines.core.config import load_recipe

    if args.verify:
        from pipelines.bundle.verify import verify_bundle

        if args.artifact:
            raise DistilleryError("--artifact picks what to build; --verify checks a built bundle.")
        recipe = load_recipe(args.recipe, _overrides(args)) if args.recipe else None
        also = None
        if args.runtime:
            from pipelines.bundle.runtimes import verify_also

            also = verify_also(Path(args.verify), args.runtime)
        verify_bundle(
            Path(args.verify),
            data=Path(args.data) if args.data else None,
            recipe=recipe,
            runs_dir=Path(args.runs_dir) if recipe else None,  # the run's records: the reference
            also=also,
        )
        print("verify: ok")
        return 0
    if args.data or args.runtime:
        flag = "--data" if args.data else "--runtime"
        raise DistilleryError(f"{flag} goes with --verify DIR (it checks a built bundle).")
    if not args.recipe:
        raise DistilleryError(
            "distillery bundle: give a RECIPE to build a bundle (distillery bundle "
            "recipes/demo.yaml), or --verify DIR to check one."
        )
    from pipelines.run.runner import run_pipeline

    overrides = _overrides(args) + ([f"bundle.artifact={args.artifact}"] if args.artifact else [])
    recipe = load_recipe(args.recipe, overrides)
    done = run_pipeline(
        recipe, Path(args.runs_dir), target="bundle", force=args.force, dry_run=args.dry_run
    )
    if not args.dry_run:
        folder = Path(args.runs_dir) / recipe.name / "bundle"
        print(
            f"bundle: {folder} ({done['bundle']['metrics']['artifact']}); check it with "
            f"`distillery bundle --verify {shlex.quote(str(folder))}`"
        )
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    """Upload a built bundle (checked against its SHA256SUMS) to a Hub model repo."""
    from pipelines.bundle.push import push_to_hub

    url = push_to_hub(args.folder, args.repo_id, private=args.private, revision=args.revision)
    print(f"push: {args.folder} -> {url}")
    return 0


def cmd_stages(args: argparse.Namespace) -> int:
    from pipelines.run.registry import STAGES

    for stage in STAGES.values():
        needs = (
            ", ".join(n if STAGES[n].enabled is None else f"{n} (if enabled)" for n in stage.needs)
            or "-"
        )
        optional = " (optional)" if stage.enabled is not None else ""
        print(f"{stage.name:9} needs {needs:44} {stage.describe}{optional}")
    return 0


def cmd_bench_gpu(args: argparse.Namespace) -> int:
    """The GPU rows alone for a run's artifacts; exit 0 with a message where there is no CUDA."""
    from pipelines.bench.gpu import cuda_status
    from pipelines.core.config import load_recipe
    from pipelines.report.tables import terminal_table
    from pipelines.stages.bench import gpu_only

    reason = cuda_status()
    if reason:
        print(f"bench-gpu: skipped, no CUDA here: {reason}. Nothing to measure; exit 0.")
        return 0
    rows, out = gpu_only(load_recipe(args.recipe, _overrides(args)), Path(args.runs_dir))
    print(terminal_table(rows))
    for kind in ("skipped", "error"):
        for line in sorted(
            {f"{r['artifact']} {r['precision']}: {r[kind]}" for r in rows if r.get(kind)}
        ):
            print(f"{kind:8} {line}")
    measured = sum(1 for r in rows if r.get("p50_ms") is not None)
    errors = sum(1 for r in rows if r.get("error"))
    print(f"bench-gpu: {measured} cells measured, {errors} errors → {out}")
    return 1 if errors else 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Models outside a run, timed as the bench stage times a run's artifacts."""
    from pipelines.bench.standalone import bench_paths

    flags = {
        "grid": args.grid,
        "batch_sizes": args.batch_sizes,
        "seq_lens": args.seq_lens,
        "threads": args.threads,
        "rounds": args.rounds,
        "min_runs": args.min_runs,
        "min_seconds": args.min_seconds,
        "max_length": args.max_length,
    }
    settings = {k: v for k, v in flags.items() if v is not None}
    texts = Path(args.texts) if args.texts else None
    result = bench_paths(args.paths, Path(args.out), args.peer, settings, texts)
    print(result["table"])
    print(f"bench: {result['results']} and {result['markdown']}")
    measured = any(r.get("p50_ms") is not None for r in result["rows"])
    return 0 if measured else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from pipelines.report.compare import compare_markdown, run_results

    text = compare_markdown(run_results(args.run_a), run_results(args.run_b))
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Every command and its flags, in the order `distillery --help` lists them.

    Why one function: it is the CLI's table of contents, one `add_parser` block per command;
    split, a reader would hop between helpers to see what the CLI offers."""
    parser = argparse.ArgumentParser(prog="distillery", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"distillery {_version()}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show third-party warnings and notices too"
    )
    sub = parser.add_subparsers(dest="command")  # none given: main prints the help

    p = sub.add_parser(
        "validate", help="check a recipe and its overrides, without running anything"
    )
    _add_recipe_args(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "init",
        help="write a recipe for your data and teacher, sized to the data",
        description="Read DATA once (CSV, TSV, JSONL, parquet, a folder of split files, a "
        "save_to_disk folder or a hub dataset id), propose columns, labels and task type, and "
        "write a recipe whose keys say why each value.",
    )
    p.add_argument("data", help="a data file or folder, or a hub dataset id")
    p.add_argument("--teacher", required=True, help="a fine-tuned checkpoint or a base model")
    p.add_argument("--name", help="run name (default: the data file's name)")
    p.add_argument("-o", "--output", help="recipe path (default: recipes/NAME.yaml)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", help="run the pipeline (or one stage and what it needs)")
    _add_recipe_args(p)
    p.add_argument("--stage", help="run this stage and, first, any earlier stage not yet done")
    p.add_argument(
        "--force", action="store_true", help="rerun the stage even if its manifest matches"
    )
    p.add_argument(
        "--dry-run", action="store_true", help="validate and say what would run; train nothing"
    )
    p.add_argument(
        "--runs-dir",
        default=os.environ.get("DISTILLERY_RUNS", "runs"),
        help="where run folders go (default: runs/, or $DISTILLERY_RUNS)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "search", help="search students (search section), then train and ship the pick"
    )
    _add_recipe_args(p)
    p.add_argument("--only", action="store_true", help="stop after the search stage")
    p.add_argument("--dry-run", action="store_true", help="say what would run; train nothing")
    p.add_argument(
        "--runs-dir",
        default=os.environ.get("DISTILLERY_RUNS", "runs"),
        help="where run folders go (default: runs/, or $DISTILLERY_RUNS)",
    )
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("embed", help="print the [CLS] vector of texts from PyTorch or ONNX")
    _add_recipe_args(p)
    p.add_argument(
        "--artifact",
        default="student",
        help="student, teacher (PyTorch), student-onnx, teacher-onnx (needs feature_extraction)",
    )
    p.add_argument("--text", action="append", required=True, help="a text; repeat for several")
    p.add_argument("--runs-dir", default=os.environ.get("DISTILLERY_RUNS", "runs"))
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser(
        "bundle",
        help="edge bundle of one ONNX artifact in runs/<name>/bundle/, or --verify DIR",
        description="Build runs/<name>/bundle/ (running any stage not done yet), or check one.",
    )
    p.add_argument("recipe", nargs="?", help="path to a YAML recipe, e.g. recipes/demo.yaml")
    p.add_argument("--set", action="append", nargs="+", metavar="KEY=VALUE", help=SET_HELP)
    _add_verbose(p)
    p.add_argument(
        "--artifact",
        help="artifact to ship, by its report name (student-int8-dynamic, student-onnx-O2); "
        "default: the report's recommended one",
    )
    p.add_argument("--force", action="store_true", help="rebuild even if the manifest matches")
    p.add_argument("--dry-run", action="store_true", help="say what would run; build nothing")
    p.add_argument("--runs-dir", default=os.environ.get("DISTILLERY_RUNS", "runs"))
    p.add_argument(
        "--verify",
        metavar="DIR",
        help="prove a bundle is its run's: SHA256SUMS, reference.json, then predict.py's "
        "recorded predictions on RECIPE's eval split (with RECIPE, also the run's records under "
        "--runs-dir), else on the bundle's eval.jsonl; --data adds other rows",
    )
    p.add_argument("--data", metavar="FILE", help="with --verify: labelled rows as JSON lines")
    p.add_argument(
        "--runtime",
        action="append",
        choices=("node", "browser", "ort"),  # pipelines.bundle.runtimes.RUNTIMES
        help="with --verify: also run the rows through Node (predict.mjs), headless Chromium "
        "(index.html) or ORT Mobile (model.ort) and require predict.py's answers; repeatable; "
        "skipped, with the install command, where Node/npm/Chromium are missing",
    )
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser(
        "push",
        help="upload a built bundle and its model card to the Hugging Face Hub",
        description="Check a bundle's SHA256SUMS, then upload it to a Hub model repo (token from "
        "`huggingface-cli login` or HF_TOKEN).",
    )
    p.add_argument("folder", help="a bundle folder, e.g. runs/demo/bundle")
    p.add_argument("--repo-id", required=True, help="owner/name of the model repo")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", help="branch to push to (default: main)")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("stages", help="list the pipeline's stages and what each needs")
    p.set_defaults(func=cmd_stages)

    p = sub.add_parser(
        "bench-gpu",
        help="GPU rows only (torch, ORT CUDA fp32/fp16, TensorRT int8) for a run's artifacts",
        description="Measure the GPU rows of RECIPE's artifacts into runs/<name>/bench/"
        "gpu-rows.json; without CUDA, say why and exit 0.",
    )
    _add_recipe_args(p)
    p.add_argument("--runs-dir", default=os.environ.get("DISTILLERY_RUNS", "runs"))
    p.set_defaults(func=cmd_bench_gpu)

    p = sub.add_parser(
        "bench",
        help="benchmark ONNX files, OpenVINO IR or Hugging Face model folders outside a run",
        description="Time each PATH (an .onnx file, an OpenVINO .xml or IR folder, an HF model "
        "folder with safetensors) as the bench stage times a run's artifacts: one worker process "
        "each, interleaved rounds, warm-up, percentiles, the machine recorded. Writes "
        "results.json and results.md to --out and prints the table.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="models; the first is the reference")
    p.add_argument("--peer", metavar="PATH", help="a baseline to compare against (optional)")
    p.add_argument("--out", default="bench-out", help="folder for results (default: bench-out)")
    p.add_argument(
        "--grid",
        choices=("quick", "full"),
        help="quick (default): batch 1 at seq 128, all cores; full: [1, 8, 32] × [16, 64, 128] "
        "× [1, all cores]",
    )
    p.add_argument("--batch-sizes", nargs="+", type=int, metavar="N", help="instead of --grid")
    p.add_argument("--seq-lens", nargs="+", type=int, metavar="N", help="instead of --grid")
    p.add_argument("--threads", nargs="+", type=int, metavar="N", help="thread counts")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    p.add_argument("--min-runs", type=int, help="timed runs per cell, at least (default 20)")
    p.add_argument("--min-seconds", type=float, help="timed seconds per cell (default 1.0)")
    p.add_argument(
        "--texts",
        metavar="FILE",
        help="one text per line: also serve them at their real lengths, length-bucketed "
        "(batch 32; the tokenizer beside the first model that has one measures them)",
    )
    p.add_argument("--max-length", type=int, help="the texts' token cap (default 128)")
    _add_verbose(p)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "compare",
        help="two runs' results side by side: accuracy, speed, recommendation",
        description="RUN_A and RUN_B: run folders (report/results.json, else bench/rows.json), "
        "`distillery bench --out` folders, or those files.",
    )
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.add_argument("--out", metavar="FILE", help="also write the markdown here")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("keys", help="list every recipe key with its type and default")
    p.set_defaults(func=cmd_keys)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_end_set_lists(sys.argv[1:] if argv is None else list(argv)))
    if args.command is None:  # bare `distillery`: what it can do, not an argparse error
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for (
        handler
    ) in logging.getLogger().handlers:  # the console shows warnings; log.txt gets INFO too
        handler.setLevel(logging.WARNING)
    logging.getLogger("distillery").setLevel(logging.INFO)
    quiet.install(verbose=args.verbose)  # third-party noise off the console unless --verbose
    if os.environ.get("DISTILLERY_PROGRESS", "1") != "0":  # the test suite sets it to 0
        progress.show()  # long steps: a line with an ETA on stderr (pipelines.core.progress)
    from pipelines.core.distributed import finish

    try:
        code = args.func(args)
    except (DistilleryError, InputError) as exc:  # input the user can fix: the message says how
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    except BrokenPipeError:  # `distillery keys | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 141  # as a shell reports a process ended by SIGPIPE
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        message = file_error_message(exc)  # a user's file failed where no check expected it
        print(f"error: {message}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted: finished stages are kept; rerun to resume", file=sys.stderr)
        code = 130
    return finish(code)  # under torchrun / accelerate launch: ends the process here


if __name__ == "__main__":
    sys.exit(main())
