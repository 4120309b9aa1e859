# bash completion for imgpack, installed as
# share/bash-completion/completions/imgpack. The commands and options come
# from the command's own --help texts at completion time, so they follow
# whatever version of imgpack is being completed.

# The commands `imgpack --help` lists: the lines "  NAME  summary" after
# "Commands:".
_imgpack_commands() {
    "$1" --help 2>/dev/null |
        sed -n '/^Commands:$/,/^$/s/^  \([a-z][a-z]*\) .*/\1/p'
}

_imgpack() {
    local program=${COMP_WORDS[0]} cur=${COMP_WORDS[COMP_CWORD]} words
    if ((COMP_CWORD == 1)); then
        words="$(_imgpack_commands "$program") help --help --version"
    elif ((COMP_CWORD == 2)) && [[ ${COMP_WORDS[1]} == help ]]; then
        words=$(_imgpack_commands "$program")
    elif [[ $cur == -* ]]; then
        # Every command takes --help, whether its text says so or not.
        words="--help $("$program" "${COMP_WORDS[1]}" --help 2>/dev/null |
                            grep -o -- '--[a-z][a-z0-9-]*')"
    else
        # Operands are files and directories: bash's own completion.
        COMPREPLY=()
        return
    fi
    mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur" | sort -u)
}

complete -o default -o bashdefault -F _imgpack imgpack
