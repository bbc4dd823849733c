# Sourced by scripts/lock and scripts/check-deps: sets $UV to a uv binary of the pinned version.
# uv is only a tool for making and checking the lock; neither the daemon nor its tests need it.
UV_VERSION=0.13.9
if command -v uv >/dev/null 2>&1 && [ "$(uv --version | cut -d' ' -f2)" = "$UV_VERSION" ]; then
    UV=$(command -v uv)
else
    tools=".cache/uv-$UV_VERSION"
    if [ ! -x "$tools/bin/uv" ]; then
        python3 -m venv "$tools"
        "$tools/bin/pip" install -q "uv==$UV_VERSION"
    fi
    UV="$tools/bin/uv"
fi
