"""The layout template of the demo model's files: a tiny model that `dsagent make-model` generates,
whose tokenizer.json, tokenizer_config.json, generation_config.json and config.json carry the exact
V3.2 formats (export.py and train_tokenizer.py fill in the demo's own contents)."""
import contextlib
import os
import subprocess
import tempfile


@contextlib.contextmanager
def generated_model(dsagent):
    """Yields the directory of a freshly generated `--preset tiny` model, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([dsagent, "make-model", tmp + "/m", "--preset", "tiny"], check=True, capture_output=True)
        yield os.path.join(tmp, "m")
