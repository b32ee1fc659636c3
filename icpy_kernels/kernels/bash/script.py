"""The bash side of the protocol: helper functions sourced into the kernel's shell at startup."""

from __future__ import annotations

# Fixed descriptors inside bash (high, so `exec {fd}>file` and bash's own >=10 fds miss them):
# 60 control (bash -> kernel records), 61 replies to `read` (kernel -> bash), 62 the user's
# stdin (a pipe that is always at end-of-file).
CTL_FD = 60
REPLY_FD = 61
STDIN_FD = 62

# Records on fd 60 are NUL-terminated: D<seq>:<status> (line done), R<seq>:<text> (query
# result), I<seq>:<secret>:<prompt> (a `read` wants a line). Every helper saves `$?` first and
# returns it, so the user's `$?` survives our plumbing. Helpers call `builtin` so user
# functions named printf/read/... cannot hijack them; `|| :` keeps `set -e` from firing.
_SCRIPT = r"""
exec 60>&{ctl} 61<&{rep} 62<&{eof} {ctl}>&- {rep}<&- {eof}<&-
set +o history +H +m
shopt -s expand_aliases
unset MAILCHECK HISTFILE
PS1= PS2= PS0=
__icpy_seq=0 __icpy_pending=1 __icpy_stdin=0 __icpy_code=
PROMPT_COMMAND=__icpy_post

# The `2>/dev/null` on helpers keeps their insides out of a user's `set -x` trace.
# Report the line's status once; also runs as PROMPT_COMMAND, which is what still fires
# when SIGINT made bash abandon the rest of the line.
__icpy_post() {
    local __icpy_s=$?
    if [[ $__icpy_pending == 1 ]]; then
        builtin printf 'D%s:%s\0' "$__icpy_seq" "$__icpy_s" >&60
        __icpy_pending=0
    fi
    return $__icpy_s
} 2>/dev/null

# Start a cell: load its code into $__icpy_code (no fork) and re-arm PROMPT_COMMAND.
__icpy_pre() {
    local __icpy_s=$?
    __icpy_seq=$1 __icpy_stdin=$2 __icpy_pending=1
    PROMPT_COMMAND=__icpy_post
    __icpy_code=
    IFS= builtin read -r -d '' __icpy_code < "$3" || :
    return $__icpy_s
} 2>/dev/null

# Completion and inspection against the live state; the answer goes to fd 60.
__icpy_query() {
    local __icpy_s=$? __icpy_t
    __icpy_seq=$1 __icpy_pending=1
    PROMPT_COMMAND=__icpy_post
    {
        builtin printf 'R%s:' "$1"
        case $2 in
            cmd) builtin compgen -c -- "$3" ;;
            var) builtin compgen -v -- "$3" ;;
            path) builtin compgen -d -- "$3"; builtin printf '\1\n'; builtin compgen -f -- "$3" ;;
            inspect)
                if [[ $3 == \$* ]]; then
                    builtin declare -p -- "${3#\$}"
                else
                    __icpy_t=$(builtin type -t -- "$3")
                    [[ $3 == read ]] || builtin type -a -- "$3"
                    case $__icpy_t in builtin|keyword|function) builtin help -- "$3" ;; esac
                fi ;;
        esac
        builtin printf '\0'
    } >&60 2>/dev/null || :
    return $__icpy_s
}

# `read` from the cell's stdin asks the front end (input_request) through the kernel.
# Reads from anything else (files, pipes, -u fd) go straight to the builtin.
read() {
    local __icpy_o __icpy_p= __icpy_x=0 __icpy_u= __icpy_l OPTIND=1 OPTARG
    while builtin getopts ":a:d:ei:n:N:p:rst:u:" __icpy_o; do
        case $__icpy_o in
            p) __icpy_p=$OPTARG ;;
            s) __icpy_x=1 ;;
            u) __icpy_u=$OPTARG ;;
        esac
    done
    if [[ $__icpy_stdin != 1 || ( -n $__icpy_u && $__icpy_u != 0 ) ]] \
        || ! [[ /dev/stdin -ef /proc/self/fd/62 ]]; then
        builtin read "$@"
        return
    fi
    builtin printf 'I%s:%s:%s\0' "$__icpy_seq" "$__icpy_x" "$__icpy_p" >&60
    IFS= builtin read -r -d '' -u 61 __icpy_l || return 1
    if [[ $__icpy_l == L* ]]; then
        builtin read "$@" <<< "${__icpy_l#L}"
    else
        builtin read "$@" < /dev/null
    fi
}
"""


def init_script(ctl: int, rep: int, eof: int) -> str:
    """The startup script, moving the inherited pipes onto the fixed descriptors."""
    return _SCRIPT.replace("{ctl}", str(ctl)).replace("{rep}", str(rep)).replace("{eof}", str(eof))
