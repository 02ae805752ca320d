package service

import (
	"context"
	"database/sql"
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/id"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The members of an organisation and their roles (docs/adr/0019-roles.md). The gRPC
// interceptor has already checked the caller's role (libs/platform/auth MethodPermission:
// viewer to list, owner to change); here every query is scoped to the caller's
// organisation, so another organisation's user is NotFound.

var loginPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,38}$`)

func validLogin(login string) error {
	if !loginPattern.MatchString(login) {
		return status.Errorf(codes.InvalidArgument, "login %q: 1 to 39 characters of a-z, 0-9 and '-', starting with a letter or digit", login)
	}
	return nil
}

func parseRole(s string) (auth.Role, error) {
	r, err := auth.ParseRole(s)
	if err != nil {
		return "", status.Error(codes.InvalidArgument, err.Error())
	}
	return r, nil
}

// callerOrg returns the calling user's organisation.
func callerOrg(ctx context.Context) (string, error) {
	if _, err := caller(ctx); err != nil {
		return "", err
	}
	return auth.RequireOrg(ctx)
}

// setRole gives userID the role in orgID, adding the membership if needed.
func setRole(ctx context.Context, db *sqldb.DB, tx *sql.Tx, userID, orgID, role string, now int64) error {
	_, err := tx.ExecContext(ctx, db.Q(`INSERT INTO auth_memberships (user_id, org_id, role, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id, org_id) DO UPDATE SET role = excluded.role`), userID, orgID, role, now)
	return err
}

// ListMembers lists the caller's organisation's members by login.
func (s *Service) ListMembers(ctx context.Context, _ *apiv1.ListMembersRequest) (*apiv1.ListMembersResponse, error) {
	org, err := callerOrg(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT u.login, m.role, m.created_at FROM auth_memberships m JOIN auth_users u ON u.id = m.user_id WHERE m.org_id = ? ORDER BY u.login`), org)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list members: %v", err)
	}
	defer rows.Close()
	out := &apiv1.ListMembersResponse{}
	for rows.Next() {
		m := &apiv1.Member{}
		var created int64
		if err := rows.Scan(&m.Login, &m.Role, &created); err != nil {
			return nil, status.Errorf(codes.Internal, "list members: %v", err)
		}
		m.CreatedAt = timestamppb.New(time.Unix(0, created))
		out.Members = append(out.Members, m)
	}
	if err := rows.Err(); err != nil {
		return nil, status.Errorf(codes.Internal, "list members: %v", err)
	}
	// The teams of each, in one query: a member's effective role is its own and its
	// teams' highest.
	teams, err := s.db.QueryContext(ctx, s.db.Q(`SELECT u.login, t.name, t.role FROM auth_teams t JOIN auth_team_members tm ON tm.team_id = t.id
		JOIN auth_users u ON u.id = tm.user_id WHERE t.org_id = ? ORDER BY t.name`), org)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list members: %v", err)
	}
	defer teams.Close()
	byLogin := map[string]*apiv1.Member{}
	for _, m := range out.Members {
		m.EffectiveRole = m.Role
		byLogin[m.Login] = m
	}
	for teams.Next() {
		var login, team, role string
		if err := teams.Scan(&login, &team, &role); err != nil {
			return nil, status.Errorf(codes.Internal, "list members: %v", err)
		}
		if m := byLogin[login]; m != nil {
			m.Teams = append(m.Teams, team)
			m.EffectiveRole = string(auth.Highest(auth.Role(m.EffectiveRole), auth.Role(role)))
		}
	}
	if err := teams.Err(); err != nil {
		return nil, status.Errorf(codes.Internal, "list members: %v", err)
	}
	return out, nil
}

// AddMember adds a user to the caller's organisation with a role. An existing user
// becomes a member without a token (it makes its own, bound to this organisation); a
// new local login is created here with its first token, shown once, and so is a user of
// this organisation that was removed from every organisation (its tokens were revoked).
func (s *Service) AddMember(ctx context.Context, req *apiv1.AddMemberRequest) (*apiv1.Member, error) {
	org, err := callerOrg(ctx)
	if err != nil {
		return nil, err
	}
	role, err := parseRole(req.GetRole())
	if err != nil {
		return nil, err
	}
	now := s.Now()
	var token string
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		var userID, home string
		var memberships, here int
		err := tx.QueryRowContext(ctx, s.db.Q(`SELECT u.id, u.org_id, (SELECT COUNT(*) FROM auth_memberships m WHERE m.user_id = u.id),
			(SELECT COUNT(*) FROM auth_memberships m WHERE m.user_id = u.id AND m.org_id = ?) FROM auth_users u WHERE u.login = ?`), org, req.GetLogin()).
			Scan(&userID, &home, &memberships, &here)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if err := validLogin(req.GetLogin()); err != nil {
				if strings.HasPrefix(req.GetLogin(), "github:") {
					return status.Errorf(codes.NotFound, "no user %q: a GitHub user signs in once before it can be added", req.GetLogin())
				}
				return err
			}
			userID = id.New()
			_, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO auth_users (id, org_id, login, admin, created_at) VALUES (?, ?, ?, ?, ?)`), userID, org, req.GetLogin(), false, now.UnixNano())
			if sqldb.IsUniqueViolation(err) {
				return status.Errorf(codes.AlreadyExists, "login %q is taken", req.GetLogin())
			}
			if err != nil {
				return err
			}
			token = TokenPrefix + id.Secret(24)
		case err != nil:
			return err
		case here > 0:
			return status.Errorf(codes.AlreadyExists, "%s is a member already: PATCH /api/v1/members/%s changes its role", req.GetLogin(), req.GetLogin())
		case home == org && memberships == 0:
			// Removed from everywhere, its tokens revoked: it comes back with a new one.
			token = TokenPrefix + id.Secret(24)
		}
		if err := setRole(ctx, s.db, tx, userID, org, string(role), now.UnixNano()); err != nil {
			return err
		}
		if token == "" {
			return nil
		}
		return s.insertToken(ctx, tx, token, id.New(), userID, org, "first", now, DefaultTokenLifetime)
	})
	if err != nil {
		return nil, txError("add member", err)
	}
	return &apiv1.Member{Login: req.GetLogin(), Role: string(role), CreatedAt: timestamppb.New(now), Token: token}, nil
}

// txError keeps a status error from a transaction and wraps anything else as Internal.
func txError(what string, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Errorf(codes.Internal, "%s: %v", what, err)
}

// member finds login's membership in org (NotFound when it has none there).
func (s *Service) member(ctx context.Context, tx *sql.Tx, org, login string) (userID, role string, created int64, err error) {
	err = tx.QueryRowContext(ctx, s.db.Q(`SELECT u.id, m.role, m.created_at FROM auth_users u JOIN auth_memberships m ON m.user_id = u.id WHERE u.login = ? AND m.org_id = ?`), login, org).
		Scan(&userID, &role, &created)
	if errors.Is(err, sql.ErrNoRows) {
		err = status.Errorf(codes.NotFound, "no member %q in this organisation", login)
	}
	return
}

// keepOwner refuses a change that would leave org without an owner: a member whose
// current role is owner keeps it while it is the only one.
func (s *Service) keepOwner(ctx context.Context, tx *sql.Tx, org, role string) error {
	if role != string(auth.Owner) {
		return nil
	}
	var owners int
	if err := tx.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM auth_memberships WHERE org_id = ? AND role = ?`), org, string(auth.Owner)).Scan(&owners); err != nil {
		return err
	}
	if owners <= 1 {
		return status.Error(codes.FailedPrecondition, "the organisation's last owner keeps the owner role: make another member owner first")
	}
	return nil
}

// UpdateMember changes a member's role; the last owner stays one.
func (s *Service) UpdateMember(ctx context.Context, req *apiv1.UpdateMemberRequest) (*apiv1.Member, error) {
	org, err := callerOrg(ctx)
	if err != nil {
		return nil, err
	}
	role, err := parseRole(req.GetRole())
	if err != nil {
		return nil, err
	}
	out := &apiv1.Member{Login: req.GetLogin(), Role: string(role)}
	var changed []string
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		userID, old, created, err := s.member(ctx, tx, org, req.GetLogin())
		if err != nil {
			return err
		}
		out.CreatedAt = timestamppb.New(time.Unix(0, created))
		if old == string(role) {
			return nil
		}
		if err := s.keepOwner(ctx, tx, org, old); err != nil {
			return err
		}
		if _, err = tx.ExecContext(ctx, s.db.Q(`UPDATE auth_memberships SET role = ? WHERE user_id = ? AND org_id = ?`), string(role), userID, org); err != nil {
			return err
		}
		changed, err = s.activeTokens(ctx, tx, []string{userID}, org)
		return err
	})
	if err != nil {
		return nil, txError("update member", err)
	}
	s.forget(changed)
	return out, nil
}

// RemoveMember removes a member from the organisation and its teams and revokes its
// tokens bound to it (the ones of its other organisations stay); the last owner stays.
func (s *Service) RemoveMember(ctx context.Context, req *apiv1.RemoveMemberRequest) (*emptypb.Empty, error) {
	org, err := callerOrg(ctx)
	if err != nil {
		return nil, err
	}
	var revoked []string
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		userID, role, _, err := s.member(ctx, tx, org, req.GetLogin())
		if err != nil {
			return err
		}
		if err := s.keepOwner(ctx, tx, org, role); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM auth_memberships WHERE user_id = ? AND org_id = ?`), userID, org); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM auth_team_members WHERE user_id = ? AND team_id IN (SELECT id FROM auth_teams WHERE org_id = ?)`), userID, org); err != nil {
			return err
		}
		if revoked, err = s.activeTokens(ctx, tx, []string{userID}, org); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.db.Q(`UPDATE auth_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL AND `+tokenInOrg), s.Now().UnixNano(), userID, org)
		return err
	})
	if err != nil {
		return nil, txError("remove member", err)
	}
	s.forget(revoked)
	return &emptypb.Empty{}, nil
}

// tokenInOrg is the condition that a token of auth_tokens acts in the organisation given
// as its parameter (a token without one acts in its user's own, as VerifyToken has it).
const tokenInOrg = `COALESCE(org_id, (SELECT u.org_id FROM auth_users u WHERE u.id = auth_tokens.user_id)) = ?`

// activeTokens lists the ids of the users' tokens acting in org that are not revoked:
// the ones whose principal a change of role in org changes.
func (s *Service) activeTokens(ctx context.Context, tx *sql.Tx, userIDs []string, org string) ([]string, error) {
	var ids []string
	for _, userID := range userIDs {
		rows, err := tx.QueryContext(ctx, s.db.Q(`SELECT id FROM auth_tokens WHERE user_id = ? AND revoked_at IS NULL AND `+tokenInOrg), userID, org)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// querier is a database or a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// effectiveRole is userID's role in org: the highest of its membership's role and its
// teams' roles there; "" when it is no member (a team counts only for members).
func effectiveRole(ctx context.Context, db *sqldb.DB, q querier, userID, org string) (auth.Role, error) {
	rows, err := q.QueryContext(ctx, db.Q(`SELECT m.role, COALESCE(t.role, '') FROM auth_memberships m
		LEFT JOIN auth_team_members tm ON tm.user_id = m.user_id
		LEFT JOIN auth_teams t ON t.id = tm.team_id AND t.org_id = m.org_id
		WHERE m.user_id = ? AND m.org_id = ?`), userID, org)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var roles []auth.Role
	for rows.Next() {
		var own, team string
		if err := rows.Scan(&own, &team); err != nil {
			return "", err
		}
		roles = append(roles, auth.Role(own), auth.Role(team))
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	return auth.Highest(roles...), nil
}

// forget drops the tokens from this process's verification cache (OnRevoke), so that a
// changed role or a removal holds here at once (elsewhere within auth.CacheTTL).
func (s *Service) forget(tokenIDs []string) {
	if s.OnRevoke == nil {
		return
	}
	for _, id := range tokenIDs {
		s.OnRevoke(id)
	}
}
