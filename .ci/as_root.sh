# Sourced by the scripts that install Debian packages: as_root CMD... runs CMD as root (directly, or through
# password-less sudo) and fails when neither is possible.
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo "$@"
    else
        return 1
    fi
}
