//! Accounts, for the `admin` role: the console's users (role, code required, disabled,
//! sessions open) and agents, changed here as `schoolgate-console user …` and `agent …`
//! change them — add, set role, set a password, disable or enable, end sessions, remove; add,
//! rotate or revoke an agent, its token shown once. Every change ends the user's sessions
//! and goes to the audit log under the same names as the command line's. An admin does not
//! remove, disable or change the role of their own account, so the console keeps one.
//!
//! In a trust, an admin with schools manages the users of those schools alone and their
//! agents, and what they add goes in their schools; an admin of the whole trust chooses the
//! school and moves accounts and agents between schools.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use serde::Deserialize;

use super::{Answer, Frame, Refused, Shared, Signed, now_ms, render, see_other};
use crate::auth::{
    NewPassword, Role, agent_name, hash_new_password, random_token, token_hash, user_name,
};
use crate::db::accounts::{Account, Agent};

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsPage<'a> {
    frame: Frame<'a>,
    accounts: Vec<Account>,
    agents: Vec<(Agent, String)>,
    roles: [&'static str; 5],
    /// The schools a new account or agent may be put in (a trust admin's choice of all, a
    /// school's admin's of their own): (id, name).
    schools: Vec<(String, String)>,
    /// The admin is the whole trust's: they move accounts and agents between schools.
    trust: bool,
    /// The settings, to name an account's or an agent's schools.
    config: &'a crate::config::Config,
    message: Option<String>,
    /// A new agent token, shown this once.
    token: Option<(String, String)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Shown {
    done: String,
}

/// The school a new user or agent goes in: the school chosen (for a trust's admin, none is
/// the whole trust); a school's admin chooses among their own, none being all of theirs.
fn school_for(app: &Shared, signed: &Signed, chosen: &str) -> Result<Option<String>, Refused> {
    let school = app
        .config
        .school_named(chosen)
        .map_err(|e| Refused::Bad(format!("{e}.")))?
        .map(|s| s.id.to_string());
    let scope = signed.scope();
    match school {
        None => Ok(scope.column()),
        Some(s) if scope.admits(Some(&s)) => Ok(Some(s)),
        Some(s) => Err(Refused::Bad(format!(
            "An admin of {} adds to their own schools only, not {s}.",
            scope.schools().join(", ")
        ))),
    }
}

/// Refuses anyone but an admin.
fn admin(signed: &Signed) -> Result<(), Refused> {
    if signed.role() == Role::Admin {
        Ok(())
    } else {
        Err(Refused::Forbidden(
            "Only an admin's account manages accounts.",
        ))
    }
}

async fn page_with(
    app: &Shared,
    signed: &Signed,
    message: Option<String>,
    token: Option<(String, String)>,
) -> Answer {
    admin(signed)?;
    let zone = &app.config.time_zone;
    let scope = signed.scope();
    let agents = app
        .db
        .agents(&scope)
        .await?
        .into_iter()
        .map(|a| {
            let seen = a.last_seen_ms.map_or("never".to_owned(), |t| zone.when(t));
            (a, seen)
        })
        .collect();
    render(&AccountsPage {
        frame: signed.frame(app),
        accounts: app.db.accounts(&scope, now_ms()).await?,
        agents,
        roles: Role::ALL.map(Role::as_str),
        schools: app
            .config
            .schools
            .iter()
            .filter(|s| scope.admits(Some(s.id.as_str())))
            .map(|s| (s.id.to_string(), s.name.clone()))
            .collect(),
        trust: scope.is_trust(),
        config: &app.config,
        message,
        token,
    })
}

pub async fn page(State(app): State<Shared>, signed: Signed, Query(shown): Query<Shown>) -> Answer {
    let message = match shown.done.as_str() {
        "" => None,
        // A fixed word from this module's own redirects, shown as text.
        done => Some(format!("Done: {}.", done.replace('_', " "))),
    };
    page_with(&app, &signed, message, None).await
}

#[derive(Debug, Deserialize)]
pub struct UserForm {
    csrf: String,
    /// `add`, `role`, `password`, `disable`, `enable`, `logout`, `remove`.
    action: String,
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
    /// For `add` and `school`: a school's id, or empty for the whole trust.
    #[serde(default)]
    school: String,
}

/// `password` checked for `name` and hashed; a weak one refused, saying why.
async fn hashed(password: String, name: &str) -> Result<String, Refused> {
    hash_new_password(password, name)
        .await
        .map_err(|e| match e {
            NewPassword::Weak(weak) => Refused::Bad(format!("{weak}.")),
            _ => Refused::Internal,
        })
}

pub async fn user(State(app): State<Shared>, signed: Signed, Form(form): Form<UserForm>) -> Answer {
    signed.form_ok(&form.csrf)?;
    admin(&signed)?;
    let name = user_name(&form.name).map_err(|e| Refused::Bad(format!("{e}.")))?;
    let own = name == signed.name();
    let missing = || Refused::Bad(format!("There is no user {name:?}."));
    let existing = app.db.user_by_name(&name).await?;
    // A school's admin reaches their own school's users only; others are not there.
    if form.action != "add"
        && !existing
            .as_ref()
            .is_some_and(|u| signed.scope().covers(&u.scope()))
    {
        return Err(missing());
    }
    let (action, detail) = match form.action.as_str() {
        "add" => {
            let role: Role = form
                .role
                .parse()
                .map_err(|e| Refused::Bad(format!("{e}.")))?;
            if existing.is_some() {
                return Err(Refused::Bad(format!("There is already a user {name:?}.")));
            }
            let school = school_for(&app, &signed, &form.school)?;
            let hash = hashed(form.password.clone(), &name).await?;
            app.db.put_user(&name, role, &hash, now_ms()).await?;
            app.db.set_user_school(&name, school.as_deref()).await?;
            (
                "user_add",
                Some(match school {
                    Some(s) => format!("role {role}, school {s}"),
                    None => format!("role {role}"),
                }),
            )
        }
        "school" => {
            if !signed.scope().is_trust() {
                return Err(Refused::Forbidden(
                    "Only an admin of the whole trust moves accounts between schools.",
                ));
            }
            if own {
                return Err(Refused::Forbidden(
                    "An admin does not change their own school.",
                ));
            }
            let school = school_for(&app, &signed, &form.school)?;
            app.db.set_user_school(&name, school.as_deref()).await?;
            (
                "user_school",
                Some(school.map_or("the whole trust".to_owned(), |s| format!("school {s}"))),
            )
        }
        "role" => {
            let role: Role = form
                .role
                .parse()
                .map_err(|e| Refused::Bad(format!("{e}.")))?;
            if own {
                return Err(Refused::Forbidden(
                    "An admin does not change their own role.",
                ));
            }
            if !app.db.set_role(&name, role).await? {
                return Err(missing());
            }
            ("user_role", Some(format!("role {role}")))
        }
        "password" => {
            let hash = hashed(form.password.clone(), &name).await?;
            if !app.db.set_password(&name, &hash).await? {
                return Err(missing());
            }
            ("user_password", None)
        }
        what @ ("disable" | "enable") => {
            if own {
                return Err(Refused::Forbidden(
                    "An admin does not disable their own account.",
                ));
            }
            if !app.db.set_disabled(&name, what == "disable").await? {
                return Err(missing());
            }
            (
                if what == "disable" {
                    "user_disable"
                } else {
                    "user_enable"
                },
                None,
            )
        }
        "logout" => ("user_logout", None),
        "remove" => {
            if own {
                return Err(Refused::Forbidden(
                    "An admin does not remove their own account.",
                ));
            }
            if !app.db.remove_user(&name).await? {
                return Err(missing());
            }
            ("user_remove", None)
        }
        _ => return Err(Refused::Bad("Unknown action.".into())),
    };
    // Any change ends the user's sessions: a new role or password takes effect at once.
    app.db.end_sessions_of(&name).await?;
    signed
        .audit(&app, action, Some(&name), detail.as_deref())
        .await?;
    Ok(see_other(&format!("/accounts?done={action}")))
}

#[derive(Debug, Deserialize)]
pub struct AgentForm {
    csrf: String,
    name: String,
    /// For `add` and `school`: a school's id, or empty for the trust's own.
    #[serde(default)]
    school: String,
}

/// `/accounts/agents/{add|rotate|revoke}`.
pub async fn agent(
    State(app): State<Shared>,
    signed: Signed,
    Path(action): Path<String>,
    Form(form): Form<AgentForm>,
) -> Answer {
    signed.form_ok(&form.csrf)?;
    admin(&signed)?;
    let name = agent_name(&form.name).map_err(|e| Refused::Bad(format!("{e}.")))?;
    let now = now_ms();
    // A school's admin reaches their own school's agents only.
    if action != "add" && !app.db.agent_in(&signed.scope(), &name).await? {
        return Err(Refused::Bad(format!("There is no agent {name:?}.")));
    }
    match action.as_str() {
        "add" | "rotate" => {
            let token = format!("sga_{}", random_token().map_err(|_| Refused::Internal)?);
            let done = if action == "add" {
                let school = school_for(&app, &signed, &form.school)?;
                // A gateway serves one school.
                if school.as_deref().is_some_and(|s| s.contains(',')) {
                    return Err(Refused::Bad("Choose the school the gateway serves.".into()));
                }
                app.db.add_agent(&name, &token_hash(&token), now).await?
                    && app.db.set_agent_school(&name, school.as_deref()).await?
            } else {
                app.db.set_agent_token(&name, &token_hash(&token)).await?
            };
            if !done {
                return Err(Refused::Bad(if action == "add" {
                    format!("There is already an agent called {name:?}.")
                } else {
                    format!("There is no agent {name:?}.")
                }));
            }
            let audited = if action == "add" {
                "agent_add"
            } else {
                "agent_rotate"
            };
            signed.audit(&app, audited, Some(&name), None).await?;
            // Shown on this answer only: the console keeps its hash, not the token.
            page_with(
                &app,
                &signed,
                Some(format!(
                    "Agent {name}'s new token is below: put it in the file its policy's \
                     gateway.console.token_file names. It is shown this once."
                )),
                Some((name, token)),
            )
            .await
        }
        "school" => {
            if !signed.scope().is_trust() {
                return Err(Refused::Forbidden(
                    "Only an admin of the whole trust moves agents between schools.",
                ));
            }
            let school = school_for(&app, &signed, &form.school)?;
            app.db.set_agent_school(&name, school.as_deref()).await?;
            let detail = school.map_or("the trust's own".to_owned(), |s| format!("school {s}"));
            signed
                .audit(&app, "agent_school", Some(&name), Some(&detail))
                .await?;
            Ok(see_other("/accounts?done=agent_school"))
        }
        "revoke" => {
            if !app.db.revoke_agent(&name, now).await? {
                return Err(Refused::Bad(format!("There is no agent {name:?}.")));
            }
            signed
                .audit(&app, "agent_revoke", Some(&name), None)
                .await?;
            Ok(see_other("/accounts?done=agent_revoke"))
        }
        _ => Err(Refused::NotFound("action")),
    }
}
