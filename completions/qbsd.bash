# bash completion for qbsd. Generated from qbsd's command tree by completions/generate.py:
# do not edit; regenerate with `python completions/generate.py completions/`.
# Use: `source` this file from ~/.bashrc, or copy it to ~/.local/share/bash-completion/completions/qbsd

# _qbsd_compgen KIND WORD [WORDS]: fill COMPREPLY with files, folders or WORDS starting with WORD.
_qbsd_compgen() {
    case "$1" in
        file | dir)
            compopt -o filenames 2>/dev/null
            local IFS=$'\n'
            if [[ $1 == dir ]]; then COMPREPLY=($(compgen -d -- "$2")); else COMPREPLY=($(compgen -f -- "$2")); fi
            ;;
        words) COMPREPLY=($(compgen -W "$3" -- "$2")) ;;
    esac
}

_qbsd() {
    COMPREPLY=()
    local cur="${COMP_WORDS[COMP_CWORD]}" option="" prefix=""
    local -i cword=COMP_CWORD
    # The option whose value is being completed: `--opt VALUE`, or `--opt=VALUE` (which bash
    # splits into `--opt`, `=`, `VALUE` when `=` is in COMP_WORDBREAKS, as it is by default).
    if [[ $cur == = ]] && ((cword >= 2)); then
        cur="" option="${COMP_WORDS[cword - 1]}"
    elif ((cword >= 3)) && [[ ${COMP_WORDS[cword - 1]} == = ]]; then
        option="${COMP_WORDS[cword - 2]}"
    elif [[ $cur == --*=* ]]; then
        option="${cur%%=*}" prefix="${option}=" cur="${cur#*=}"
    elif ((cword >= 2)) && [[ ${COMP_WORDS[cword - 1]} == -* ]]; then
        option="${COMP_WORDS[cword - 1]}"
    fi
    # The subcommand: the first word that is neither an option nor an option's value.
    local command="" word
    local -i i=1 dashdash=0
    while ((i < cword)); do
        word="${COMP_WORDS[i]}"
        case "$word" in
            -*) ;;
            *) command="$word"; break ;;
        esac
        ((i += 1))
    done
    if [[ -n $command ]]; then
        for ((i += 1; i < cword; i++)); do
            [[ ${COMP_WORDS[i]} == -- ]] && dashdash=1
        done
    fi
    if ((dashdash)); then option=""; fi
    _qbsd_offer
    if [[ -n $prefix ]]; then COMPREPLY=("${COMPREPLY[@]/#/$prefix}"); fi
    return 0
}

# _qbsd_offer: fill COMPREPLY for $command, $option and $cur (set by _qbsd).
_qbsd_offer() {
    case "$command" in
        "")
            if [[ $cur == -* ]]; then
                _qbsd_compgen words "$cur" "--debug --install-completion --show-completion --help -h"
            else
                _qbsd_compgen words "$cur" "tag index similar search path map cluster tags train evaluate"
            fi
            ;;
        tag)
            case "$option" in
                --top|-k|--jobs|-j|--timeout|--cluster) return 0 ;;
                --format|-f) _qbsd_compgen words "$cur" "auto json table m3u"; return 0 ;;
                --model) _qbsd_compgen file "$cur"; return 0 ;;
            esac
            if [[ $cur == -* ]] && ((!dashdash)); then
                _qbsd_compgen words "$cur" "--top -k --vector --jobs -j --full --timeout --format -f --model --cluster --help -h"
            else
                _qbsd_compgen file "$cur"
            fi
            ;;
        index)
            case "$option" in
                --from-jsonl|--model) _qbsd_compgen file "$cur"; return 0 ;;
                --jobs|-j|--timeout|--cluster) return 0 ;;
                --index|-i) _qbsd_compgen dir "$cur"; return 0 ;;
                --format|-f) _qbsd_compgen words "$cur" "auto json table m3u"; return 0 ;;
            esac
            if [[ $cur == -* ]] && ((!dashdash)); then
                _qbsd_compgen words "$cur" "--from-jsonl --errors --duplicates --rebuild --jobs -j --full --timeout --index -i --model --cluster --format -f --help -h"
            else
                _qbsd_compgen dir "$cur"
            fi
            ;;
        similar)
            case "$option" in
                --not|--tag|--top|-k|--per-artist|--per-album) return 0 ;;
                --format|-f) _qbsd_compgen words "$cur" "auto json table m3u"; return 0 ;;
                --index|-i) _qbsd_compgen dir "$cur"; return 0 ;;
                --model) _qbsd_compgen file "$cur"; return 0 ;;
            esac
            if [[ $cur == -* ]] && ((!dashdash)); then
                _qbsd_compgen words "$cur" "--not --tag --top -k --per-artist --per-album --keep-duplicates --explain --include-self --exact --full --format -f --index -i --model --help -h"
            else
                _qbsd_compgen file "$cur"
            fi
            ;;
        search)
            case "$option" in
                --like|--not|--top|-k|--per-artist|--per-album) return 0 ;;
                --format|-f) _qbsd_compgen words "$cur" "auto json table m3u"; return 0 ;;
                --index|-i) _qbsd_compgen dir "$cur"; return 0 ;;
                --model) _qbsd_compgen file "$cur"; return 0 ;;
            esac
            if [[ $cur == -* ]] && ((!dashdash)); then
                _qbsd_compgen words "$cur" "--like --not --top -k --per-artist --per-album --keep-duplicates --explain --full --format -f --index -i --model --help -h"
            fi
            ;;
        path)
            case "$option" in
                --steps|-n|--per-artist|--per-album) return 0 ;;
                --format|-f) _qbsd_compgen words "$cur" "auto json table m3u"; return 0 ;;
                --index|-i) _qbsd_compgen dir "$cur"; return 0 ;;
                --model) _qbsd_compgen file "$cur"; return 0 ;;
            esac
            if [[ $cur == -* ]] && ((!dashdash)); then
                _qbsd_compgen words "$cur" "--steps -n --per-artist --per-album --keep-duplicates --explain --full --format -f --index -i --model --help -h"
            else
                _qbsd_compgen file "$cur"
            fi
            ;;
        map)
            case "$option" in
                --output|-o) _qbsd_compgen file "$cur"; return 0 ;;
                --index|-i) _qbsd_compgen dir "$cur"; return 0 ;;
            esac
            _qbsd_compgen words "$cur" "--output -o --index -i --help -h"
            ;;
        cluster)
            case "$option" in
                --count|-n|--min-size|--max-size|--per-artist) return 0 ;;
                --output|-o) _qbsd_compgen file "$cur"; return 0 ;;
                --format|-f) _qbsd_compgen words "$cur" "auto json table m3u"; return 0 ;;
                --index|-i) _qbsd_compgen dir "$cur"; return 0 ;;
            esac
            _qbsd_compgen words "$cur" "--count -n --min-size --max-size --per-artist --explain --output -o --format -f --index -i --help -h"
            ;;
        tags)
            case "$option" in
                --model) _qbsd_compgen file "$cur"; return 0 ;;
            esac
            _qbsd_compgen words "$cur" "--verbose -v --model --help -h"
            ;;
        train)
            case "$option" in
                --data|--output|-o|--epochs-from-cv) _qbsd_compgen file "$cur"; return 0 ;;
                --layout|--recipe|--epochs|--limit|--jobs|-j) return 0 ;;
                --cache) _qbsd_compgen dir "$cur"; return 0 ;;
            esac
            _qbsd_compgen words "$cur" "--data --layout --recipe --output -o --epochs --epochs-from-cv --limit --cache --jobs -j --int8-convolutions --help -h"
            ;;
        evaluate)
            case "$option" in
                --data) _qbsd_compgen file "$cur"; return 0 ;;
                --layout|--methods|--jobs|-j) return 0 ;;
                --results|--cache) _qbsd_compgen dir "$cur"; return 0 ;;
            esac
            _qbsd_compgen words "$cur" "--data --layout --methods --results --cache --jobs -j --help -h"
            ;;
    esac
}

complete -F _qbsd qbsd
