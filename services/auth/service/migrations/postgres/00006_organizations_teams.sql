-- +goose Up
-- Several organisations per user, and teams (docs/adr/0021-organisations-and-teams.md).
-- An API token acts in one organisation, chosen when it is made: auth_tokens.org_id
-- (tokens from before act in their user's organisation, auth_users.org_id, which stays
-- the user's own, "home", organisation). A team is a named group of an organisation's
-- members with a role; a member's effective role is the highest of its own and its
-- teams'. auth_orgs.created_by: who created an organisation through the API (NULL for
-- the ones the service made), to bound how many a user creates.
ALTER TABLE auth_tokens ADD COLUMN org_id TEXT;
UPDATE auth_tokens SET org_id = (SELECT u.org_id FROM auth_users u WHERE u.id = auth_tokens.user_id);
ALTER TABLE auth_orgs ADD COLUMN created_by TEXT;
CREATE INDEX auth_orgs_created_by ON auth_orgs (created_by);
CREATE INDEX auth_memberships_user ON auth_memberships (user_id);
CREATE TABLE auth_teams (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, name)
);
CREATE TABLE auth_team_members (
    team_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX auth_team_members_user ON auth_team_members (user_id);
