#!/usr/bin/env bash
# The floor for a promotion into a directory on a shared trunk: what a CI job does with plain git. Clone the trunk
# (depth 1), set the image tag in the stage directory's manifest, commit, push; when another job pushed first,
# fetch and rebase onto it and push again. No lock, no record: only git's own work.
#
#   bench/plain-trunk-promotion.sh <remote-url> <branch> <file> <image> <tag>
set -euo pipefail
remote=$1 branch=$2 file=$3 image=$4 tag=$5
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet --depth 1 --single-branch --branch "$branch" "$remote" "$work"
cd "$work"
sed -i "s|image: $image:[^ ]*|image: $image:$tag|" "$file"
git -c user.name=Bench -c user.email=bench@example.com commit --quiet -am "promote $tag"
for attempt in $(seq 1 100); do
  if git push --quiet origin "HEAD:refs/heads/$branch" 2>/dev/null; then exit 0; fi
  git fetch --quiet origin "$branch"
  git -c user.name=Bench -c user.email=bench@example.com rebase --quiet FETCH_HEAD
done
echo "gave up after 100 pushes" >&2
exit 1
