//! The `chat` command line: `chat [run]` serves every role; `chat rebuild (--all | NAME...)`
//! rebuilds projections blue/green beside a running platform (the projector's rebuild, with
//! the platform's settings), so the README's single-node deployment can replay too.

/// What the `chat` binary was asked to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `chat [run]`.
    Run,
    /// `chat rebuild --all` (empty) or `chat rebuild NAME...`.
    Rebuild { projections: Vec<String> },
}

/// The usage line of the `chat` binary.
pub const USAGE: &str = "usage: chat [run] | chat rebuild (--all | NAME...)";

impl Command {
    /// Parses the arguments after the program name.
    pub fn parse(args: &[String]) -> anyhow::Result<Command> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            [] | ["run"] => Ok(Command::Run),
            ["rebuild", ..] => match projector::startup::Command::parse(
                &args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(),
            ) {
                Ok(projector::startup::Command::Rebuild { projections }) => {
                    Ok(Command::Rebuild { projections })
                }
                _ => anyhow::bail!(USAGE),
            },
            _ => anyhow::bail!(USAGE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Command> {
        Command::parse(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn chat_runs_the_platform_or_rebuilds_projections() {
        assert_eq!(parse(&[]).ok(), Some(Command::Run));
        assert_eq!(parse(&["run"]).ok(), Some(Command::Run));
        assert_eq!(
            parse(&["rebuild", "--all"]).ok(),
            Some(Command::Rebuild {
                projections: vec![]
            })
        );
        assert_eq!(
            parse(&["rebuild", "search"]).ok(),
            Some(Command::Rebuild {
                projections: vec!["search".into()]
            })
        );
        for bad in [
            &["rebuild"][..],
            &["rebuild", "--all", "search"],
            &["run", "--projection", "search"],
            &["serve"],
        ] {
            assert_eq!(
                parse(bad).err().map(|e| e.to_string()),
                Some(USAGE.to_owned()),
                "{bad:?}"
            );
        }
    }
}
