-- +goose Up
-- Roles (docs/adr/0019-roles.md): a user's role in an organisation. Users from before
-- keep what they could do: admins become owners, the others maintainers.
CREATE TABLE auth_memberships (
    user_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, org_id)
);
CREATE INDEX auth_memberships_org ON auth_memberships (org_id, role);
INSERT INTO auth_memberships (user_id, org_id, role, created_at)
    SELECT id, org_id, CASE WHEN admin THEN 'owner' ELSE 'maintainer' END, created_at FROM auth_users;
