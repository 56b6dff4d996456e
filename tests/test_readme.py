"""The README's first two commands are what CI runs."""

import re

from rstar_pipeline.paths import PROJECT_ROOT


def test_ci_runs_the_readme_commands_verbatim():
    """The two commands that open the README appear, unchanged, in .ci/run."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)[:2]
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert len(blocks) == 2
    for block in blocks:
        for line in block.strip().splitlines():
            assert line in ci.splitlines(), line
