#!/bin/sh
# Runs Chromium ("$@") so that it dies with the Node process that launched it, even when that
# process is killed with SIGKILL and can clean nothing up. Our stdin is a pipe from that process
# (puppeteer's spawn): it reads end-of-file exactly when the launcher is gone. Then the whole
# process group goes (puppeteer starts us detached, as a group leader): Chromium, its zygote,
# renderers and GPU process, and this script.
exec 3<&0 0</dev/null
"$@" 3<&- &
chromium=$!
( while read -r _ <&3; do :; done; kill -KILL 0 ) &
watchdog=$!
exec 3<&-
# close(): the launcher's SIGTERM is for Chromium, which then exits in its own time.
trap 'kill -TERM "$chromium" 2>/dev/null' TERM INT HUP
while :; do
  wait "$chromium"
  status=$?
  # A trap interrupts wait; Chromium may still be running.
  kill -0 "$chromium" 2>/dev/null || break
done
kill "$watchdog" 2>/dev/null
exit "$status"
