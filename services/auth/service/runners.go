package service

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/id"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// MaxRunners bounds how many runners may hold an active token.
const MaxRunners = 1000

// runnerAdmin refuses every caller but an admin user: runner tokens open the runner
// protocol, whose jobs carry every tenant's secrets.
func runnerAdmin(ctx context.Context) error {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "not authenticated")
	}
	if p.GetUserId() == "" || !p.GetAdmin() {
		return status.Error(codes.PermissionDenied, "only admins manage runners")
	}
	return nil
}

// RegisterRunner issues the token of a new runner; the response is the only place it is
// shown.
func (s *Service) RegisterRunner(ctx context.Context, req *apiv1.RegisterRunnerRequest) (*apiv1.RunnerToken, error) {
	if err := runnerAdmin(ctx); err != nil {
		return nil, err
	}
	if err := auth.ValidRunnerName(req.GetName()); err != nil {
		return nil, status.Error(codes.InvalidArgument, "name: 1 to 63 characters of a-z, 0-9 and '-', starting with a letter or digit")
	}
	now := s.Now()
	token := auth.RunnerTokenPrefix + req.GetName() + "_" + id.Secret(24)
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM auth_runners WHERE revoked_at IS NULL`)).Scan(&n); err != nil {
			return err
		}
		if n >= MaxRunners {
			return status.Errorf(codes.ResourceExhausted, "%d runners are registered, the most allowed: revoke one first", n)
		}
		var exists int
		if err := tx.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM auth_runners WHERE name = ? AND revoked_at IS NULL`), req.GetName()).Scan(&exists); err != nil {
			return err
		}
		if exists > 0 {
			return status.Errorf(codes.AlreadyExists, "runner %s is registered: revoke it first (simpleci runners revoke %s)", req.GetName(), req.GetName())
		}
		_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO auth_runners (hash, id, name, created_at) VALUES (?, ?, ?, ?)`),
			hash(token), id.New(), req.GetName(), now.UnixNano())
		return err
	})
	if _, ok := status.FromError(err); ok && err != nil {
		return nil, err
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "register runner: %v", err)
	}
	return &apiv1.RunnerToken{Name: req.GetName(), CreatedAt: timestamppb.New(now), Token: token}, nil
}

// ListRunners lists the runners whose token is not revoked, by name.
func (s *Service) ListRunners(ctx context.Context, _ *apiv1.ListRunnersRequest) (*apiv1.ListRunnersResponse, error) {
	if err := runnerAdmin(ctx); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT name, created_at, last_used_at FROM auth_runners WHERE revoked_at IS NULL ORDER BY name`))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list runners: %v", err)
	}
	defer rows.Close()
	out := &apiv1.ListRunnersResponse{}
	for rows.Next() {
		var r apiv1.RunnerToken
		var created int64
		var used sql.NullInt64
		if err := rows.Scan(&r.Name, &created, &used); err != nil {
			return nil, status.Errorf(codes.Internal, "list runners: %v", err)
		}
		r.CreatedAt = timestamppb.New(time.Unix(0, created))
		if used.Valid {
			r.LastUsedAt = timestamppb.New(time.Unix(0, used.Int64))
		}
		out.Runners = append(out.Runners, &r)
	}
	if err := rows.Err(); err != nil {
		return nil, status.Errorf(codes.Internal, "list runners: %v", err)
	}
	return out, nil
}

// RevokeRunner revokes a runner's token: this process forgets it at once, the others
// within auth.CacheTTL; the runner's next claim is refused.
func (s *Service) RevokeRunner(ctx context.Context, req *apiv1.RevokeRunnerRequest) (*emptypb.Empty, error) {
	if err := runnerAdmin(ctx); err != nil {
		return nil, err
	}
	var tokenID string
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, s.db.Q(`SELECT id FROM auth_runners WHERE name = ? AND revoked_at IS NULL`), req.GetName()).Scan(&tokenID)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.db.Q(`UPDATE auth_runners SET revoked_at = ? WHERE id = ?`), s.Now().UnixNano(), tokenID)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, status.Errorf(codes.NotFound, "no registered runner %q", req.GetName())
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "revoke runner: %v", err)
	}
	if s.OnRevoke != nil {
		s.OnRevoke(tokenID)
	}
	return &emptypb.Empty{}, nil
}

// verifyRunner resolves a runner token: a runner principal, with no user and no
// organisation.
func (s *Service) verifyRunner(ctx context.Context, token string) (*authv1.Principal, error) {
	if _, err := auth.RunnerTokenName(token); err != nil {
		return nil, status.Error(codes.Unauthenticated, "invalid token")
	}
	h := hash(token)
	var name, tokenID string
	var revoked, lastUsed sql.NullInt64
	err := s.db.QueryRowContext(ctx, s.db.Q(`SELECT name, id, revoked_at, last_used_at FROM auth_runners WHERE hash = ?`), h).
		Scan(&name, &tokenID, &revoked, &lastUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, status.Error(codes.Unauthenticated, "invalid token")
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "verify token: %v", err)
	}
	if revoked.Valid {
		return nil, status.Error(codes.Unauthenticated, "runner token revoked")
	}
	s.touch(ctx, "auth_runners", h, lastUsed, s.Now())
	return &authv1.Principal{Login: "runner:" + name, Runner: name, TokenId: tokenID}, nil
}

// isRunnerToken reports whether token has the form of a runner token.
func isRunnerToken(token string) bool { return strings.HasPrefix(token, auth.RunnerTokenPrefix) }
