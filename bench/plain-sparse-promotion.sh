#!/usr/bin/env bash
# The floor for a promotion into a directory of a large repository: what a CI job does with plain git to touch as
# little of it as it can. A shallow, blobless, sparse clone of the branch (only the root's files and the stage
# directory are checked out, so only their contents are fetched), set the image tag in the stage's manifest,
# commit, push. No retry, no lock, no record: only git's own work.
#
#   bench/plain-sparse-promotion.sh <remote-url> <branch> <stage-dir> <file> <image> <tag>
set -euo pipefail
remote=$1 branch=$2 dir=$3 file=$4 image=$5 tag=$6
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet --depth 1 --filter=blob:none --sparse --single-branch --branch "$branch" "$remote" "$work"
cd "$work"
git sparse-checkout set "$dir"
sed -i "s|image: $image:[^ ]*|image: $image:$tag|" "$file"
git -c user.name=Bench -c user.email=bench@example.com commit --quiet -am "promote $tag"
git push --quiet origin "HEAD:refs/heads/$branch"
