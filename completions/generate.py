"""Static shell completion scripts for `qbsd`, generated from its click command tree.

    python completions/generate.py completions/          # (re)write the three scripts
    python completions/generate.py --check completions/  # exit 1 if they are stale

writes `qbsd.bash` (bash), `_qbsd` (zsh) and `qbsd.fish` (fish). They complete the
subcommand names, each subcommand's long and short options, the values of options that
have choices (`--format auto|json|table|m3u`), files for positional arguments and
file-valued options, and folders for `index`'s FOLDERS and `--index`.

The scripts are plain shell code: pressing TAB never starts Python. This generator is a
developer's tool and is not part of the installed package.
"""

from __future__ import annotations

import enum
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

# the checkout this script lives in, not an installed qbsd, is the one to describe
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHELLS = ("bash", "zsh", "fish")
FILENAMES = {"bash": "qbsd.bash", "zsh": "_qbsd", "fish": "qbsd.fish"}
REGENERATE = "python completions/generate.py completions/"
PROGRAM = "qbsd"

# What a parameter's value is, where its type alone does not say (click knows these
# only as str or Path). Keyed by the parameter's Python name, in any subcommand.
DIRECTORY_PARAMS = {"folders", "index_folder", "cache", "results"}
FILE_PARAMS = {"from_jsonl"}  # a file, or '-' for stdin
NO_COMPLETION_PARAMS = {"words"}  # `search` tag words, not files

# Kinds of value: "choice" (a fixed list), "file", "dir", "none" (a value, nothing to offer).


@dataclass
class OptionSpec:
    names: list[str]  # as declared: ['--top', '-k']
    help: str
    takes_value: bool
    kind: str = "none"  # only when takes_value
    choices: list[str] = field(default_factory=list)
    metavar: str = "value"
    multiple: bool = False
    is_help: bool = False

    @property
    def long(self) -> list[str]:
        return [name for name in self.names if name.startswith("--")]

    @property
    def short(self) -> list[str]:
        return [name for name in self.names if not name.startswith("--")]


@dataclass
class ArgumentSpec:
    name: str
    kind: str
    many: bool  # nargs == -1: any number


@dataclass
class CommandSpec:
    name: str
    help: str
    options: list[OptionSpec]
    arguments: list[ArgumentSpec]
    subcommands: list[CommandSpec] = field(default_factory=list)


# --------------------------------------------------------------------------- the command tree


def _summary(text: str | None) -> str:
    """The first sentence of a help text, on one line, without `[default: ...]` notes."""
    text = re.sub(r"\s+", " ", (text or "").split("\n\n")[0]).strip()
    text = re.sub(r"\s*\[default:[^\]]*\]", "", text)
    match = re.match(r"(.*?[.!?])(\s|$)", text)
    sentence = match.group(1) if match else text
    return sentence.rstrip(".").strip()


def _choice_text(choice) -> str:
    return str(choice.value) if isinstance(choice, enum.Enum) else str(choice)


def _choices(param) -> list[str]:
    """The allowed values of a parameter, if it has a fixed set."""
    descriptor = getattr(param, "type_descriptor", None)  # typer >= 0.29 (vendored click)
    if descriptor is not None:
        choices = descriptor.choices if descriptor.is_choice else None
    else:  # older typer on real click: a click.Choice type
        choices = getattr(getattr(param, "type", None), "choices", None)
    return [_choice_text(choice) for choice in choices or ()]


def _path_okay(param) -> tuple[bool, bool, bool]:
    """(is a path, files allowed, folders allowed)."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:
        info = descriptor.parameter_info
        is_path = bool(descriptor.is_path or descriptor.is_file)
        return is_path, bool(getattr(info, "file_okay", True)), bool(getattr(info, "dir_okay", True))
    param_type = getattr(param, "type", None)
    is_path = type(param_type).__name__ in ("Path", "File")
    return is_path, bool(getattr(param_type, "file_okay", True)), bool(getattr(param_type, "dir_okay", True))


def _kind(param, positional: bool) -> str:
    if _choices(param):
        return "choice"
    is_path, files_okay, dirs_okay = _path_okay(param)
    if param.name in DIRECTORY_PARAMS or (is_path and dirs_okay and not files_okay):
        return "dir"
    if param.name in NO_COMPLETION_PARAMS:
        return "none"
    if param.name in FILE_PARAMS or is_path or positional:
        return "file"
    return "none"


def _context(command, name: str, parent=None):
    """A click context for `command`, so that get_params() includes the help option
    under the names the app chose (`-h`, `--help`)."""
    return command.context_class(command, info_name=name, parent=parent, **(command.context_settings or {}))


def _command_spec(command, name: str, parent_context=None) -> CommandSpec:
    context = _context(command, name, parent_context)
    help_names = set(getattr(context, "help_option_names", ()) or ())
    options: list[OptionSpec] = []
    arguments: list[ArgumentSpec] = []
    for param in command.get_params(context):
        if getattr(param, "hidden", False):
            continue
        if getattr(param, "param_type_name", "") == "argument":
            arguments.append(ArgumentSpec(param.name, _kind(param, True), param.nargs == -1))
            continue
        # long names first, then short ones, each sorted: click keeps the help option's
        # names in a set, whose order changes from run to run
        names = sorted(
            list(param.opts) + list(getattr(param, "secondary_opts", None) or []),
            key=lambda name: (not name.startswith("--"), name),
        )
        flag = bool(getattr(param, "is_flag", False) or getattr(param, "count", False))
        spec = OptionSpec(
            names=names,
            help=_summary(getattr(param, "help", "")),
            takes_value=not flag,
            multiple=bool(getattr(param, "multiple", False) or getattr(param, "count", False)),
            is_help=bool(names) and set(names) <= help_names,
        )
        if not flag:
            spec.kind = _kind(param, False)
            spec.choices = _choices(param)
            spec.metavar = param.name.replace("_", "-")
        for choice in spec.choices:
            if not re.fullmatch(r"[\w.,:+/@%-]+", choice):
                raise ValueError(f"{name} {names[0]}: choice {choice!r} needs quoting the generator does not do")
        options.append(spec)
    subcommands = []
    for sub_name in getattr(command, "list_commands", lambda ctx: [])(context):
        sub = command.get_command(context, sub_name)
        if sub is None or getattr(sub, "hidden", False):
            continue
        if getattr(sub, "commands", None):
            raise NotImplementedError(f"nested command groups ({name} {sub_name}) are not supported")
        subcommands.append(_command_spec(sub, sub_name, context))
    return CommandSpec(
        name=name, help=_summary(command.help), options=options, arguments=arguments, subcommands=subcommands
    )


def command_tree() -> CommandSpec:
    """qbsd's commands, options and arguments, read from the Typer app."""
    import typer.main

    from qbsd_cli.cli import app

    return _command_spec(typer.main.get_command(app), PROGRAM)


# --------------------------------------------------------------------------- bash


def _header(shell: str) -> list[str]:
    install = {
        "bash": "Use: `source` this file from ~/.bashrc, or copy it to ~/.local/share/bash-completion/completions/qbsd",
        "zsh": "Use: copy it into a folder on $fpath (before compinit), or `source` it after compinit",
        "fish": "Use: copy it to ~/.config/fish/completions/qbsd.fish",
    }[shell]
    return [
        f"# {shell} completion for qbsd. Generated from qbsd's command tree by completions/generate.py:",
        f"# do not edit; regenerate with `{REGENERATE}`.",
        f"# {install}",
    ]


def _bash_case_pattern(names: list[str]) -> str:
    return "|".join(names)


def _bash_value_action(kind: str, choices: list[str]) -> str:
    if kind == "choice":
        return f'_qbsd_compgen words "$cur" "{" ".join(choices)}"'
    if kind in ("file", "dir"):
        return f'_qbsd_compgen {kind} "$cur"'
    return ""  # a value (a number, a name) with nothing to offer


def _bash_option_words(command: CommandSpec) -> str:
    return " ".join(name for option in command.options for name in option.long + option.short)


def _render_bash(tree: CommandSpec) -> str:
    out = _header("bash")
    top_value_options = [name for option in tree.options if option.takes_value for name in option.names]
    out += [
        "",
        "# _qbsd_compgen KIND WORD [WORDS]: fill COMPREPLY with files, folders or WORDS starting with WORD.",
        "_qbsd_compgen() {",
        '    case "$1" in',
        "        file | dir)",
        "            compopt -o filenames 2>/dev/null",
        "            local IFS=$'\\n'",
        '            if [[ $1 == dir ]]; then COMPREPLY=($(compgen -d -- "$2")); else COMPREPLY=($(compgen -f -- "$2")); fi',
        "            ;;",
        '        words) COMPREPLY=($(compgen -W "$3" -- "$2")) ;;',
        "    esac",
        "}",
        "",
        "_qbsd() {",
        "    COMPREPLY=()",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" option="" prefix=""',
        "    local -i cword=COMP_CWORD",
        "    # The option whose value is being completed: `--opt VALUE`, or `--opt=VALUE` (which bash",
        "    # splits into `--opt`, `=`, `VALUE` when `=` is in COMP_WORDBREAKS, as it is by default).",
        "    if [[ $cur == = ]] && ((cword >= 2)); then",
        '        cur="" option="${COMP_WORDS[cword - 1]}"',
        "    elif ((cword >= 3)) && [[ ${COMP_WORDS[cword - 1]} == = ]]; then",
        '        option="${COMP_WORDS[cword - 2]}"',
        "    elif [[ $cur == --*=* ]]; then",
        '        option="${cur%%=*}" prefix="${option}=" cur="${cur#*=}"',
        "    elif ((cword >= 2)) && [[ ${COMP_WORDS[cword - 1]} == -* ]]; then",
        '        option="${COMP_WORDS[cword - 1]}"',
        "    fi",
        "    # The subcommand: the first word that is neither an option nor an option's value.",
        '    local command="" word',
        "    local -i i=1 dashdash=0",
        "    while ((i < cword)); do",
        '        word="${COMP_WORDS[i]}"',
        '        case "$word" in',
    ]
    if top_value_options:
        out.append(f"            {_bash_case_pattern(top_value_options)}) ((i += 1)) ;;")
    out += [
        "            -*) ;;",
        '            *) command="$word"; break ;;',
        "        esac",
        "        ((i += 1))",
        "    done",
        "    if [[ -n $command ]]; then",
        "        for ((i += 1; i < cword; i++)); do",
        "            [[ ${COMP_WORDS[i]} == -- ]] && dashdash=1",
        "        done",
        "    fi",
        '    if ((dashdash)); then option=""; fi',
        "    _qbsd_offer",
        '    if [[ -n $prefix ]]; then COMPREPLY=("${COMPREPLY[@]/#/$prefix}"); fi',
        "    return 0",
        "}",
        "",
        "# _qbsd_offer: fill COMPREPLY for $command, $option and $cur (set by _qbsd).",
        "_qbsd_offer() {",
        '    case "$command" in',
        '        "")',
    ]
    out += _bash_option_value_case(tree, "            ")
    out += [
        "            if [[ $cur == -* ]]; then",
        f'                _qbsd_compgen words "$cur" "{_bash_option_words(tree)}"',
        "            else",
        f'                _qbsd_compgen words "$cur" "{" ".join(sub.name for sub in tree.subcommands)}"',
        "            fi",
        "            ;;",
    ]
    for sub in tree.subcommands:
        out.append(f"        {sub.name})")
        out += _bash_option_value_case(sub, "            ")
        positional = sub.arguments[0].kind if sub.arguments else None
        if positional in ("file", "dir"):
            out += [
                "            if [[ $cur == -* ]] && ((!dashdash)); then",
                f'                _qbsd_compgen words "$cur" "{_bash_option_words(sub)}"',
                "            else",
                f'                _qbsd_compgen {positional} "$cur"',
                "            fi",
            ]
        elif positional is not None:  # an argument with nothing to offer: options only on `-`
            out += [
                "            if [[ $cur == -* ]] && ((!dashdash)); then",
                f'                _qbsd_compgen words "$cur" "{_bash_option_words(sub)}"',
                "            fi",
            ]
        else:
            out.append(f'            _qbsd_compgen words "$cur" "{_bash_option_words(sub)}"')
        out.append("            ;;")
    out += [
        "    esac",
        "}",
        "",
        f"complete -F _qbsd {PROGRAM}",
    ]
    return "\n".join(out) + "\n"


def _bash_option_value_case(command: CommandSpec, indent: str) -> list[str]:
    valued = [option for option in command.options if option.takes_value]
    if not valued:
        return []
    out = [f'{indent}case "$option" in']
    # group options with the same completion into one case branch
    groups: dict[str, list[str]] = {}
    for option in valued:
        groups.setdefault(_bash_value_action(option.kind, option.choices), []).extend(option.names)
    for action, names in groups.items():
        out.append(f"{indent}    {_bash_case_pattern(names)}) {action + '; ' if action else ''}return 0 ;;")
    out.append(f"{indent}esac")
    return out


# --------------------------------------------------------------------------- zsh


def _zsh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _zsh_description(text: str) -> str:
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def _zsh_action(kind: str, choices: list[str]) -> str:
    return {"choice": f"({' '.join(choices)})", "file": "_files", "dir": "_files -/"}.get(kind, "")


def _zsh_option_specs(command: CommandSpec) -> list[str]:
    specs = []
    for option in command.options:
        if option.is_help:
            exclusion = "(- *)"
        elif option.multiple:
            exclusion = "*"
        else:
            exclusion = f"({' '.join(option.names)})" if len(option.names) > 1 else ""
        description = f"[{_zsh_description(option.help)}]"
        for name in option.names:
            if option.takes_value:
                suffix = "=" if name.startswith("--") else "+"
                value = f":{option.metavar}:{_zsh_action(option.kind, option.choices)}"
            else:
                suffix, value = "", ""
            specs.append(_zsh_quote(f"{exclusion}{name}{suffix}{description}{value}"))
    return specs


def _zsh_argument_specs(command: CommandSpec) -> list[str]:
    specs = []
    for argument in command.arguments:
        action = _zsh_action(argument.kind, [])
        action = action or " "
        specs.append(_zsh_quote(f"{'*' if argument.many else ''}:{argument.name}:{action}"))
    return specs


def _zsh_arguments_call(specs: list[str], indent: str, tail: str = "", flags: str = "-s -S") -> list[str]:
    lines = [f"{indent}_arguments {flags} \\"]
    for spec in specs:
        lines.append(f"{indent}    {spec} \\")
    lines[-1] = lines[-1][:-2] + tail
    return lines


def _render_zsh(tree: CommandSpec) -> str:
    out = [f"#compdef {PROGRAM}"] + _header("zsh") + [""]
    for sub in tree.subcommands:
        out.append(f"_qbsd_{sub.name}() {{")
        out += _zsh_arguments_call(_zsh_option_specs(sub) + _zsh_argument_specs(sub), "    ")
        out += ["}", ""]
    out += [
        "_qbsd() {",
        '    local curcontext="$curcontext" state line ret=1',
        "    typeset -A opt_args",
    ]
    top_specs = _zsh_option_specs(tree) + ["': :->command'", "'*:: :->argument'"]
    out += _zsh_arguments_call(top_specs, "    ", " && ret=0", flags="-C -s -S")
    out += [
        "    case $state in",
        "        command)",
        "            local -a commands",
        "            commands=(",
    ]
    for sub in tree.subcommands:
        out.append(f"                {_zsh_quote(sub.name + ':' + sub.help)}")
    out += [
        "            )",
        "            _describe -t commands 'qbsd command' commands && ret=0",
        "            ;;",
        "        argument)",
        '            curcontext="${curcontext%:*:*}:qbsd-$words[1]:"',
        "            case $words[1] in",
    ]
    for sub in tree.subcommands:
        out.append(f"                {sub.name}) _qbsd_{sub.name} && ret=0 ;;")
    out += [
        "            esac",
        "            ;;",
        "    esac",
        "    return ret",
        "}",
        "",
        "# Autoloaded from $fpath (as `#compdef` asks), or sourced after compinit.",
        "if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then",
        '    _qbsd "$@"',
        "else",
        f"    compdef _qbsd {PROGRAM}",
        "fi",
    ]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- fish


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish_names(names: list[str]) -> list[str]:
    parts = []
    for name in names:
        if name.startswith("--"):
            parts.append(f"-l {name[2:]}")
        elif len(name) == 2:
            parts.append(f"-s {name[1:]}")
        else:
            parts.append(f"-o {name[1:]}")
    return parts


_FISH_DIRECTORIES = "'(__fish_complete_directories (commandline -ct))'"


def _fish_value(kind: str, choices: list[str]) -> str:
    if kind == "choice":
        return f"-x -a {_fish_quote(' '.join(choices))}"
    if kind == "file":
        return "-r -F"
    if kind == "dir":
        return f"-x -a {_FISH_DIRECTORIES}"
    return "-x"


def _fish_option_lines(command: CommandSpec, condition: str) -> list[str]:
    lines = []
    for option in command.options:
        parts = [f"complete -c {PROGRAM} -n {condition}"] + _fish_names(option.names)
        if option.takes_value:
            parts.append(_fish_value(option.kind, option.choices))
        if option.help:
            parts.append(f"-d {_fish_quote(option.help)}")
        lines.append(" ".join(parts))
    return lines


def _render_fish(tree: CommandSpec) -> str:
    out = _header("fish") + [
        "",
        "# No file names unless a subcommand or an option asks for them.",
        f"complete -c {PROGRAM} -f",
        "",
    ]
    top = "__fish_use_subcommand"
    out += _fish_option_lines(tree, top)
    for sub in tree.subcommands:
        out.append(f"complete -c {PROGRAM} -n {top} -a {sub.name} -d {_fish_quote(sub.help)}")
    for sub in tree.subcommands:
        condition = _fish_quote(f"__fish_seen_subcommand_from {sub.name}")
        out += ["", f"# qbsd {sub.name}"]
        out += _fish_option_lines(sub, condition)
        if sub.arguments:
            kind = sub.arguments[0].kind
            if kind == "file":
                out.append(f"complete -c {PROGRAM} -n {condition} -F")
            elif kind == "dir":
                out.append(f"complete -c {PROGRAM} -n {condition} -a {_FISH_DIRECTORIES}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- entry points

_RENDERERS = {"bash": _render_bash, "zsh": _render_zsh, "fish": _render_fish}


def render(shell: str, tree: CommandSpec | None = None) -> str:
    """The completion script for `shell` (bash, zsh or fish)."""
    if shell not in _RENDERERS:
        raise ValueError(f"unknown shell {shell!r}; choose from {', '.join(SHELLS)}")
    return _RENDERERS[shell](tree or command_tree())


def main(argv: list[str] | None = None) -> int:
    """`python completions/generate.py [--check] [FOLDER]`: write (or check) the three scripts."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    args = [arg for arg in args if arg != "--check"]
    if len(args) > 1 or any(arg.startswith("-") for arg in args):
        sys.stderr.write("usage: python completions/generate.py [--check] [FOLDER]  (default: completions/)\n")
        return 2
    folder = Path(args[0] if args else "completions")
    tree = command_tree()
    stale = []
    for shell in SHELLS:
        path = folder / FILENAMES[shell]
        text = render(shell, tree)
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {path}")
    if stale:
        sys.stderr.write(f"stale completion scripts: {', '.join(stale)}; run `{REGENERATE}`\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
