"""The command-line reference cannot drift from the programs: every flag (and emberctl command
and command option) that a program's --help prints is documented in docs/operations.md, and
everything documented there exists in --help. Needs neither images nor a VM.

The convention in docs/operations.md, section "## Command-line reference":
- one "### `program`" heading per program (emberd, emberd-init, ember-vm, emberctl); "####"
  headings below it only group its tables;
- in the tables under it, the first column names what a row documents, in backticks: a flag
  with its argument (`--max-sandboxes N`), several flags (`--help`, `-h`), an emberctl command
  with its operands (`exec ID [CODE]`) or an emberctl command's option (`create --pack P`).
  A pipe inside a cell is written `\\|`. Every backticked span in a first column must read as
  one of those; the header row of each table is not read.

Besides that table, every command line in README.md and docs/*.md that runs one of these
programs (in a code span or a fenced block: `bin/emberd --vmm firecracker`, `emberctl create
--pack shell`) may use only flags that program's --help prints.

A failure lists, per program, exactly what is missing on which side.
"""

import glob
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PROGRAMS = ("emberd", "emberd-init", "ember-vm", "emberctl")
OPERATIONS = os.path.join(harness.REPO, "docs", "operations.md")
REFERENCE_HEADING = "## Command-line reference"

FLAG = re.compile(r"^--?[a-z0-9][a-z0-9-]*$")
COMMAND = re.compile(r"^[a-z][a-z0-9-]*$")


def program_path(name):
    """The sanitized build the other e2e tests run, else the release build."""
    for directory in (harness.ASAN_BIN, harness.BIN):
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK):
            return path
    raise RuntimeError(f"{name} is missing from {harness.ASAN_BIN} and {harness.BIN}: "
                       "run `make all asan-bins`")


def help_text(name):
    proc = subprocess.run([program_path(name), "--help"], capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"{name} --help exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def help_entries(text):
    """What a --help text documents. Entries are the lines indented by exactly two spaces; their
    synopsis is what precedes the first run of two spaces. A synopsis starting with `-` lists
    flags (`--addr HOST:PORT`, `--help, -h`); one starting with a word is an emberctl command,
    recorded with each option its synopsis shows (`create [--pack P]` gives `create` and
    `create --pack`)."""
    entries = set()
    for line in text.splitlines():
        m = re.match(r"^  (\S.*)$", line)
        if m is None:
            continue
        synopsis = re.split(r"\s{2,}", m.group(1))[0]
        if synopsis.startswith("-"):
            entries.update(re.findall(r"(?<![\w-])--?[a-z0-9][a-z0-9-]*", synopsis))
            continue
        command = synopsis.split()[0]
        if not COMMAND.match(command):
            raise AssertionError(f"cannot read the --help line {line!r}")
        entries.add(command)
        entries.update(f"{command} {flag}" for flag in re.findall(r"--[a-z0-9][a-z0-9-]*",
                                                                   synopsis))
    return entries


def split_row(line):
    """The cells of a Markdown table row (`\\|` is a pipe inside a cell)."""
    cells = re.split(r"(?<!\\)\|", line.strip())
    return [c.strip() for c in cells[1:-1]]


def span_key(span):
    """The flag, command or `command --option` a backticked first-column span documents."""
    tokens = span.replace("\\|", "|").split()
    if not tokens:
        return None
    if FLAG.match(tokens[0].rstrip(",")):
        return tokens[0].rstrip(",")
    if COMMAND.match(tokens[0]):
        if len(tokens) > 1 and tokens[1].startswith("--"):
            return f"{tokens[0]} {tokens[1]}" if FLAG.match(tokens[1]) else None
        return tokens[0]
    return None


def documented_entries(path=OPERATIONS):
    """{program: {entry: line number}} from the reference section, and a list of problems
    (unreadable spans, entries documented twice, programs the test does not know)."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    docs, problems = {}, []
    inside, program = False, None
    for i, line in enumerate(lines):
        number = i + 1
        if line.startswith("## "):
            inside = line.strip() == REFERENCE_HEADING
            program = None
            continue
        if not inside:
            continue
        m = re.match(r"^### `([^`]+)`\s*$", line)
        if m:
            program = m.group(1)
            if program not in PROGRAMS:
                problems.append(f"line {number}: `{program}` is not one of {PROGRAMS}")
            docs.setdefault(program, {})
            continue
        if line.startswith("### "):
            problems.append(f"line {number}: a ### heading in the reference must be a program "
                            f"name in backticks: {line!r}")
            program = None
            continue
        if not line.lstrip().startswith("|"):
            continue
        next_line = lines[i + 1] if i + 1 < len(lines) else ""
        if re.match(r"^\s*\|[\s:|-]+\|\s*$", line) or re.match(r"^\s*\|[\s:|-]+\|\s*$",
                                                               next_line):
            continue  # a separator row, or the header row above one
        if program is None:
            problems.append(f"line {number}: a table row outside any ### `program` heading")
            continue
        cells = split_row(line)
        spans = re.findall(r"`([^`]+)`", cells[0] if cells else "")
        if not spans:
            problems.append(f"line {number}: no flag in backticks in the first column")
        for span in spans:
            key = span_key(span)
            if key is None:
                problems.append(f"line {number}: cannot read a flag or command in `{span}`")
            elif key in docs[program]:
                problems.append(f"line {number}: `{key}` of {program} is documented twice "
                                f"(also line {docs[program][key]})")
            else:
                docs[program][key] = number
    if not any(line.strip() == REFERENCE_HEADING for line in lines):
        problems.append(f"no `{REFERENCE_HEADING}` section")
    return docs, problems


def command_lines(text):
    """Code spans and fenced-block lines of a Markdown text."""
    found, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            found.append(line)
        else:
            found.extend(re.findall(r"`([^`\n]+)`", line))
    return found


def flags_used(snippet, commands):
    """(program, entry) for every flag given to one of our programs in a command line."""
    used = []
    for m in re.finditer(r"(?:^|[\s(;&|$])(?:\S*/)?(emberd-init|emberd|emberctl|ember-vm)"
                         r"((?:\s+[^\s;&|)#]+)*)", snippet):
        program, command = m.group(1), None
        for token in m.group(2).split():
            token = token.split("=", 1)[0]
            if program == "emberctl" and command is None and token in commands:
                command = token
            elif re.match(r"^--[a-z0-9][a-z0-9-]*$", token):
                used.append((program, f"{command} {token}" if command else token))
    return used


class DocsFlagsTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.help = {name: help_entries(help_text(name)) for name in PROGRAMS}
        # `emberctl pack` has subcommands with a --help of their own: its flags count as
        # `pack --flag` entries.
        proc = subprocess.run([program_path("emberctl"), "pack", "--help"], capture_output=True,
                              text=True, timeout=60, check=True)
        cls.help["emberctl"] |= {f"pack {e}" for e in help_entries(proc.stdout)
                                 if e.startswith("--")}
        cls.docs, cls.problems = documented_entries()

    def test_help_is_read(self):
        """Guards the parser: a --help format change must not turn the diff into a no-op."""
        for name, required in (("emberd", {"--addr", "--max-sandboxes", "--help"}),
                               ("emberd-init", {"--agent-only", "--help"}),
                               ("ember-vm", {"--template", "--help"}),
                               ("emberctl", {"create", "exec --env", "--addr", "-h"})):
            self.assertLessEqual(required, self.help[name], f"{name} --help as read")

    def test_reference_is_well_formed(self):
        self.assertEqual(self.problems, [], "docs/operations.md, " + REFERENCE_HEADING)

    def test_every_help_flag_is_documented_and_every_documented_flag_exists(self):
        report = []
        for name in PROGRAMS:
            documented = set(self.docs.get(name, {}))
            undocumented = sorted(self.help[name] - documented)
            unknown = sorted(documented - self.help[name])
            if undocumented:
                report.append(f"{name}: in --help, not in docs/operations.md: "
                              + ", ".join(undocumented))
            if unknown:
                report.append(f"{name}: in docs/operations.md, not in --help: "
                              + ", ".join(f"{k} (line {self.docs[name][k]})" for k in unknown))
        self.assertEqual(report, [], "\n" + "\n".join(report))

    def test_command_lines_in_the_docs_use_real_flags(self):
        commands = {e for e in self.help["emberctl"] if " " not in e and not e.startswith("-")}
        paths = [os.path.join(harness.REPO, "README.md"),
                 os.path.join(harness.REPO, "bench", "README.md"),
                 *sorted(glob.glob(os.path.join(harness.REPO, "docs", "*.md")))]
        report = []
        for path in paths:
            with open(path, encoding="utf-8") as f:
                snippets = command_lines(f.read())
            for snippet in snippets:
                for program, entry in flags_used(snippet, commands):
                    if entry not in self.help[program]:
                        report.append(f"{os.path.relpath(path, harness.REPO)}: `{snippet}`: "
                                      f"{program} has no {entry}")
        self.assertEqual(report, [], "\n" + "\n".join(report))


if __name__ == "__main__":
    unittest.main()
