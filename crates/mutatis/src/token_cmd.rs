//! `mutatis token create|list|revoke DIR (--data PATH | --postgres URL)`: the server's bearer
//! tokens, managed offline on the store (how a lost admin token is recovered).

use std::process::ExitCode;
use std::sync::Arc;

use mutatis_schema::SchemaSet;
use mutatis_server::admin::{create_token, list_tokens, revoke_token};
use mutatis_server::auth::Role;
use mutatis_store::{Backend, Store};
use serde_json::json;

use crate::cli::{TokenArgs, TokenCommand};
use crate::error::CliError;
use crate::store_cmd::{store_err, with_store, Access};

/// Dispatch a token subcommand.
pub fn token(command: &TokenCommand) -> Result<ExitCode, CliError> {
    let (args, action) = match command {
        TokenCommand::Create(a) => (a, Action::Create),
        TokenCommand::List(a) => (a, Action::List),
        TokenCommand::Revoke(a) => (a, Action::Revoke),
    };
    let set = Arc::new(SchemaSet::load(&args.dir).map_err(CliError::InvalidSet)?);
    with_store!(&args.store, set, Access::Write, |store| run(
        &store, args, action
    ))
}

#[derive(Clone, Copy)]
enum Action {
    Create,
    List,
    Revoke,
}

fn name(args: &TokenArgs) -> Result<&str, CliError> {
    args.name
        .as_deref()
        .ok_or_else(|| CliError::Usage("give the token's name with --name N".into()))
}

fn run<B: Backend>(
    store: &Store<B>,
    args: &TokenArgs,
    action: Action,
) -> Result<ExitCode, CliError> {
    match action {
        Action::Create => {
            let name = name(args)?;
            let role: Role = args.role.parse().map_err(CliError::Usage)?;
            let token = create_token(store, name, role)
                .map_err(|e| match e {
                    mutatis_server::ServerError::Store(se) => store_err(se),
                    other => CliError::Usage(other.to_string()),
                })?
                .map_err(|refused| CliError::Usage(refused.to_string()))?;
            crate::check_cmd::emit(&format!("{token}\n"))?;
            eprintln!("created {role} token {name:?} (shown once, stored hashed)");
        }
        Action::List => {
            let mut tokens = list_tokens(store).map_err(store_err)?;
            tokens.sort_by(|a, b| a.1.name.cmp(&b.1.name));
            let mut out = String::new();
            for (_, r) in tokens {
                out.push_str(
                    &json!({"name": r.name, "role": r.role.as_str(), "created": r.created})
                        .to_string(),
                );
                out.push('\n');
            }
            crate::check_cmd::emit(&out)?;
        }
        Action::Revoke => {
            let name = name(args)?;
            let n = revoke_token(store, name).map_err(store_err)?;
            if n == 0 {
                return Err(CliError::Usage(format!("there is no token named {name:?}")));
            }
            eprintln!(
                "revoked {n} token(s) named {name:?} (servers drop cached tokens within 5 s)"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
