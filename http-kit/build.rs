//! Sets `CHAT_GIT_COMMIT` for `chat_build_info`: the `CHAT_GIT_COMMIT` environment variable
//! when set (container builds without `.git`), else `git rev-parse --short=12 HEAD`, else
//! `unknown`. Reruns when HEAD or the branch it points at moves.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    println!("cargo:rerun-if-env-changed=CHAT_GIT_COMMIT");
    let commit = match std::env::var("CHAT_GIT_COMMIT") {
        Ok(c) if !c.is_empty() => c,
        _ => {
            // HEAD of this worktree, and the ref it names (in the common dir for worktrees).
            if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
                println!("cargo:rerun-if-changed={dir}/HEAD");
                if let (Some(common), Some(head_ref)) = (
                    git(&["rev-parse", "--git-common-dir"]),
                    git(&["symbolic-ref", "-q", "HEAD"]),
                ) {
                    let common = Path::new(&dir).join(common);
                    for f in [common.join(&head_ref), common.join("packed-refs")] {
                        if f.exists() {
                            println!("cargo:rerun-if-changed={}", f.display());
                        }
                    }
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo:rustc-env=CHAT_GIT_COMMIT={commit}");
}
