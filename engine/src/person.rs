//! The person signed in on a device, as the decision reads them: a username, a class, and the
//! directory groups they are in. Where these come from (a roster, LDAP, RADIUS and sign-in
//! sessions) is the agent's business; the engine only matches them against the policy's
//! groups (`directory`, `users`) and exceptions (`classes`, `people`).

/// One person, borrowed from wherever the directory keeps them.
#[derive(Debug, Clone, Copy)]
pub struct PersonView<'a> {
    /// The username, compared without case.
    pub username: &'a str,
    /// The class (registration group), if the person has one.
    pub class: Option<&'a str>,
    /// Every directory group the person is in (their role's, year's, class and others),
    /// compared without case.
    pub groups: &'a [String],
}
