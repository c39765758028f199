# Sourced by scripts/test: run Google's Pub/Sub emulator for the tests, unless PUBSUB_EMULATOR_HOST is set.
# pubsub_emulator_start starts it on a free loopback port (in the background, so it boots while the
# linters run) and stops it when the calling script exits; pubsub_emulator_wait exports
# PUBSUB_EMULATOR_HOST once it answers. Without the emulator installed the Pub/Sub tests skip
# (and fail under KEEL_REQUIRE_SERVICES=1).

pubsub_emulator_launcher() {
    # The Debian package google-cloud-cli-pubsub-emulator ships it; gcloud's component installs it on PATH.
    dpkg -L google-cloud-cli-pubsub-emulator 2>/dev/null | grep -m1 '/bin/cloud-pubsub-emulator$' \
        || command -v cloud-pubsub-emulator \
        || true
}

pubsub_emulator_start() {
    PUBSUB_EMULATOR_PID=""
    if [ -n "${PUBSUB_EMULATOR_HOST:-}" ]; then
        return 0
    fi
    local launcher
    launcher=$(pubsub_emulator_launcher)
    if [ -z "$launcher" ]; then
        echo "Pub/Sub emulator not installed (apt-get install google-cloud-cli-pubsub-emulator): its tests skip" >&2
        return 0
    fi
    PUBSUB_EMULATOR_PORT=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    PUBSUB_EMULATOR_LOG=$(mktemp -t keel-pubsub-emulator.XXXXXX)
    # setsid: the launcher execs java in a process group of its own, so the trap stops all of it.
    setsid "$launcher" --host=127.0.0.1 --port="$PUBSUB_EMULATOR_PORT" >"$PUBSUB_EMULATOR_LOG" 2>&1 &
    PUBSUB_EMULATOR_PID=$!
    trap pubsub_emulator_stop EXIT
}

pubsub_emulator_wait() {  # pubsub_emulator_wait [SECONDS]
    [ -n "${PUBSUB_EMULATOR_PID:-}" ] || return 0
    local deadline=$((SECONDS + ${1:-60}))
    until curl -fsS "http://127.0.0.1:$PUBSUB_EMULATOR_PORT/" >/dev/null 2>&1; do
        if ! kill -0 "$PUBSUB_EMULATOR_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            echo "the Pub/Sub emulator did not come up; its log:" >&2
            cat "$PUBSUB_EMULATOR_LOG" >&2
            return 1
        fi
        sleep 0.2
    done
    export PUBSUB_EMULATOR_HOST="127.0.0.1:$PUBSUB_EMULATOR_PORT"
    echo "Pub/Sub emulator at $PUBSUB_EMULATOR_HOST (log: $PUBSUB_EMULATOR_LOG)"
}

pubsub_emulator_stop() {
    [ -n "${PUBSUB_EMULATOR_PID:-}" ] || return 0
    kill -TERM -- "-$PUBSUB_EMULATOR_PID" 2>/dev/null || true
    wait "$PUBSUB_EMULATOR_PID" 2>/dev/null || true
    rm -f "$PUBSUB_EMULATOR_LOG"
    PUBSUB_EMULATOR_PID=""
}
