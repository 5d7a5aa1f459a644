"""The README stays true: its two commands are the Makefile's, and its configuration reference is the
settings classes' own (regenerate it with `python -m deep_painting.settings_doc`)."""

from __future__ import annotations

import re
from pathlib import Path

from deep_painting import settings_doc

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_the_configuration_reference_is_the_settings_classes_own():
    start, end = README.find(settings_doc.BEGIN), README.find(settings_doc.END)
    assert start >= 0 and end > start, "the README lost its settings reference markers"
    assert README[start : end + len(settings_doc.END)] == settings_doc.reference(), (
        "README's configuration reference is stale: paste the output of `python -m deep_painting.settings_doc`"
    )


def test_every_setting_says_what_it_is_for():
    for _, cls in settings_doc._classes():
        undocumented = [name for name, field in cls.model_fields.items() if not field.description]
        assert not undocumented, f"{cls.__name__}: {undocumented} have no description"


def test_the_two_commands_are_the_makefiles_and_run_starts_the_service():
    sh_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert sh_block, "the README has no ```sh block"
    first_block = sh_block.group(1)
    assert [line.split()[:2] for line in first_block.splitlines()] == [["make", "run"], ["make", "test"]]
    makefile = (REPO / "Makefile").read_text()
    run_rule = re.search(r"^run: .*\n((?:\t.*\n)+)", makefile, re.M)
    assert run_rule, "the Makefile has no `run` rule"
    run_recipe = run_rule.group(1)
    assert "deep-painting serve" in run_recipe
    assert "make test" in (REPO / ".ci/run").read_text()
