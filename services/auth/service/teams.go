package service

import (
	"context"
	"database/sql"
	"time"

	"github.com/simpleci/simpleci/libs/platform/id"
	"github.com/simpleci/simpleci/libs/platform/sqldb"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Teams (docs/adr/0021-organisations-and-teams.md): named groups of an organisation's
// members, each with a role; a member's effective role is the highest of its own and
// its teams' (effectiveRole). The interceptor has checked the caller's role (viewer to
// read, owner to change); every query here is scoped to the caller's organisation, so
// another organisation's team is NotFound. A change drops the verifications of the
// tokens it concerns from this process's cache (forget); elsewhere it holds within
// auth.CacheTTL.

// MaxTeams bounds an organisation's teams.
const MaxTeams = 100

// team finds a team of org by name (NotFound when org has none of that name).
func (s *Service) team(ctx context.Context, q querier, org, name string) (teamID string, t *apiv1.Team, err error) {
	rows, err := q.QueryContext(ctx, s.db.Q(`SELECT id, role, created_at FROM auth_teams WHERE org_id = ? AND name = ?`), org, name)
	if err != nil {
		return "", nil, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", nil, err
		}
		return "", nil, status.Errorf(codes.NotFound, "no team %q in this organisation", name)
	}
	t = &apiv1.Team{Name: name}
	var created int64
	if err := rows.Scan(&teamID, &t.Role, &created); err != nil {
		return "", nil, err
	}
	t.CreatedAt = timestamppb.New(time.Unix(0, created))
	return teamID, t, rows.Close()
}

// teamMembers returns the ids and logins of a team's members, by login.
func (s *Service) teamMembers(ctx context.Context, q querier, teamID string) (ids, logins []string, err error) {
	rows, err := q.QueryContext(ctx, s.db.Q(`SELECT u.id, u.login FROM auth_team_members tm JOIN auth_users u ON u.id = tm.user_id WHERE tm.team_id = ? ORDER BY u.login`), teamID)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, login string
		if err := rows.Scan(&id, &login); err != nil {
			return nil, nil, err
		}
		ids, logins = append(ids, id), append(logins, login)
	}
	return ids, logins, rows.Err()
}

// ListTeams lists the caller's organisation's teams with their members.
func (s *Service) ListTeams(ctx context.Context, _ *apiv1.ListTeamsRequest) (*apiv1.ListTeamsResponse, error) {
	org, err := callerOrg(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT id, name, role, created_at FROM auth_teams WHERE org_id = ? ORDER BY name`), org)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list teams: %v", err)
	}
	var ids []string
	out := &apiv1.ListTeamsResponse{}
	for rows.Next() {
		t := &apiv1.Team{}
		var teamID string
		var created int64
		if err := rows.Scan(&teamID, &t.Name, &t.Role, &created); err != nil {
			rows.Close()
			return nil, status.Errorf(codes.Internal, "list teams: %v", err)
		}
		t.CreatedAt = timestamppb.New(time.Unix(0, created))
		ids = append(ids, teamID)
		out.Teams = append(out.Teams, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, status.Errorf(codes.Internal, "list teams: %v", err)
	}
	for i, teamID := range ids {
		if _, out.Teams[i].Members, err = s.teamMembers(ctx, s.db, teamID); err != nil {
			return nil, status.Errorf(codes.Internal, "list teams: %v", err)
		}
	}
	return out, nil
}

// GetTeam returns a team of the caller's organisation with its members.
func (s *Service) GetTeam(ctx context.Context, req *apiv1.GetTeamRequest) (*apiv1.Team, error) {
	org, err := callerOrg(ctx)
	if err != nil {
		return nil, err
	}
	teamID, t, err := s.team(ctx, s.db, org, req.GetTeam())
	if err != nil {
		return nil, txError("get team", err)
	}
	if _, t.Members, err = s.teamMembers(ctx, s.db, teamID); err != nil {
		return nil, status.Errorf(codes.Internal, "get team: %v", err)
	}
	return t, nil
}

// CreateTeam creates a team without members.
func (s *Service) CreateTeam(ctx context.Context, req *apiv1.CreateTeamRequest) (*apiv1.Team, error) {
	org, err := callerOrg(ctx)
	if err != nil {
		return nil, err
	}
	if err := validGroupName("team", req.GetName()); err != nil {
		return nil, err
	}
	role, err := parseRole(req.GetRole())
	if err != nil {
		return nil, err
	}
	now := s.Now()
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM auth_teams WHERE org_id = ?`), org).Scan(&n); err != nil {
			return err
		}
		if n >= MaxTeams {
			return status.Errorf(codes.ResourceExhausted, "the organisation has %d teams, the most allowed", n)
		}
		_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO auth_teams (id, org_id, name, role, created_at) VALUES (?, ?, ?, ?, ?)`), id.New(), org, req.GetName(), string(role), now.UnixNano())
		if sqldb.IsUniqueViolation(err) {
			return status.Errorf(codes.AlreadyExists, "team %q exists", req.GetName())
		}
		return err
	})
	if err != nil {
		return nil, txError("create team", err)
	}
	return &apiv1.Team{Name: req.GetName(), Role: string(role), CreatedAt: timestamppb.New(now)}, nil
}

// changeTeam runs change on the caller's organisation's team in a transaction, then
// drops the cached verifications of its members' tokens in the organisation (as they
// were before the change, and after it), whose effective role may have changed.
func (s *Service) changeTeam(ctx context.Context, what, name string, change func(tx *sql.Tx, org, teamID string, t *apiv1.Team) error) (*apiv1.Team, error) {
	org, err := callerOrg(ctx)
	if err != nil {
		return nil, err
	}
	var t *apiv1.Team
	var tokens []string
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		teamID, team, err := s.team(ctx, tx, org, name)
		if err != nil {
			return err
		}
		before, _, err := s.teamMembers(ctx, tx, teamID)
		if err != nil {
			return err
		}
		t = team
		if err := change(tx, org, teamID, t); err != nil {
			return err
		}
		var after []string
		if after, t.Members, err = s.teamMembers(ctx, tx, teamID); err != nil {
			return err
		}
		tokens, err = s.activeTokens(ctx, tx, append(before, after...), org)
		return err
	})
	if err != nil {
		return nil, txError(what, err)
	}
	s.forget(tokens)
	return t, nil
}

// UpdateTeam changes a team's role.
func (s *Service) UpdateTeam(ctx context.Context, req *apiv1.UpdateTeamRequest) (*apiv1.Team, error) {
	role, err := parseRole(req.GetRole())
	if err != nil {
		return nil, err
	}
	return s.changeTeam(ctx, "update team", req.GetTeam(), func(tx *sql.Tx, _, teamID string, t *apiv1.Team) error {
		t.Role = string(role)
		_, err := tx.ExecContext(ctx, s.db.Q(`UPDATE auth_teams SET role = ? WHERE id = ?`), string(role), teamID)
		return err
	})
}

// DeleteTeam deletes a team; its members keep their own roles.
func (s *Service) DeleteTeam(ctx context.Context, req *apiv1.DeleteTeamRequest) (*emptypb.Empty, error) {
	_, err := s.changeTeam(ctx, "delete team", req.GetTeam(), func(tx *sql.Tx, _, teamID string, _ *apiv1.Team) error {
		if _, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM auth_team_members WHERE team_id = ?`), teamID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM auth_teams WHERE id = ?`), teamID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// AddTeamMember puts a member of the organisation in a team (no change if it is there).
func (s *Service) AddTeamMember(ctx context.Context, req *apiv1.AddTeamMemberRequest) (*apiv1.Team, error) {
	return s.changeTeam(ctx, "add team member", req.GetTeam(), func(tx *sql.Tx, org, teamID string, _ *apiv1.Team) error {
		userID, _, _, err := s.member(ctx, tx, org, req.GetLogin())
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.db.Q(`INSERT INTO auth_team_members (team_id, user_id, created_at) VALUES (?, ?, ?) ON CONFLICT (team_id, user_id) DO NOTHING`), teamID, userID, s.Now().UnixNano())
		return err
	})
}

// RemoveTeamMember takes a member out of a team.
func (s *Service) RemoveTeamMember(ctx context.Context, req *apiv1.RemoveTeamMemberRequest) (*emptypb.Empty, error) {
	_, err := s.changeTeam(ctx, "remove team member", req.GetTeam(), func(tx *sql.Tx, _, teamID string, _ *apiv1.Team) error {
		res, err := tx.ExecContext(ctx, s.db.Q(`DELETE FROM auth_team_members WHERE team_id = ? AND user_id = (SELECT id FROM auth_users WHERE login = ?)`), teamID, req.GetLogin())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return status.Errorf(codes.NotFound, "%s is not in team %q", req.GetLogin(), req.GetTeam())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}
