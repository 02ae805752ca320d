package service

import (
	"context"
	"database/sql"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/simpleci/simpleci/libs/platform/auth"
	"github.com/simpleci/simpleci/libs/platform/id"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Limits of the token API (docs/api.md, docs/security.md).
const (
	// DefaultTokenLifetime applies when CreateToken's expires_in is empty.
	DefaultTokenLifetime = 90 * 24 * time.Hour
	// MaxTokenLifetime bounds expires_in.
	MaxTokenLifetime = 365 * 24 * time.Hour
	// MinTokenLifetime is the shortest expires_in accepted.
	MinTokenLifetime = time.Minute
	// MaxTokenName is the longest token name, in characters.
	MaxTokenName = 64
	// MaxActiveTokens is how many tokens a user may hold that are neither revoked nor
	// expired.
	MaxActiveTokens = 50
)

// caller returns the calling user; the internal token (peers) has no user and no tokens.
func caller(ctx context.Context) (string, error) {
	p, ok := auth.PrincipalFrom(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "not authenticated")
	}
	if p.GetUserId() == "" {
		return "", status.Error(codes.PermissionDenied, "only users have API tokens")
	}
	return p.GetUserId(), nil
}

func validName(name string) error {
	n := utf8.RuneCountInString(name)
	if n == 0 || n > MaxTokenName || !utf8.ValidString(name) || strings.TrimSpace(name) != name {
		return status.Errorf(codes.InvalidArgument, "name: 1 to %d characters, without leading or trailing spaces", MaxTokenName)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return status.Error(codes.InvalidArgument, "name: printable characters only")
		}
	}
	return nil
}

func lifetime(s string) (time.Duration, error) {
	if s == "" {
		return DefaultTokenLifetime, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < MinTokenLifetime || d > MaxTokenLifetime {
		return 0, status.Errorf(codes.InvalidArgument, "expiresIn: a duration such as \"720h\", from %v to %v (empty: %v)",
			MinTokenLifetime, MaxTokenLifetime, DefaultTokenLifetime)
	}
	return d, nil
}

// CreateToken issues a token for the caller; the response is the only place it is shown.
func (s *Service) CreateToken(ctx context.Context, req *apiv1.CreateTokenRequest) (*apiv1.Token, error) {
	userID, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := validName(req.GetName()); err != nil {
		return nil, err
	}
	life, err := lifetime(req.GetExpiresIn())
	if err != nil {
		return nil, err
	}
	now := s.Now()
	token := TokenPrefix + id.Secret(24)
	t := &apiv1.Token{Id: id.New(), Name: req.GetName(), CreatedAt: timestamppb.New(now), ExpiresAt: timestamppb.New(now.Add(life)), Token: token}
	err = s.db.Tx(ctx, func(tx *sql.Tx) error {
		var active int
		if err := tx.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM auth_tokens WHERE user_id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`), userID, now.UnixNano()).Scan(&active); err != nil {
			return err
		}
		if active >= MaxActiveTokens {
			return status.Errorf(codes.ResourceExhausted, "you hold %d active tokens, the most allowed: revoke one first", active)
		}
		return s.insertToken(ctx, tx, token, t.Id, userID, t.Name, now, life)
	})
	if _, ok := status.FromError(err); ok && err != nil {
		return nil, err
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "create token: %v", err)
	}
	return t, nil
}

// insertToken stores the hash of a new API token of userID, expiring after life.
func (s *Service) insertToken(ctx context.Context, tx *sql.Tx, token, tokenID, userID, name string, now time.Time, life time.Duration) error {
	_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO auth_tokens (hash, id, user_id, name, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`),
		hash(token), tokenID, userID, name, now.UnixNano(), now.Add(life).UnixNano())
	return err
}

// ListTokens lists the caller's tokens that are not revoked, newest first.
func (s *Service) ListTokens(ctx context.Context, _ *apiv1.ListTokensRequest) (*apiv1.ListTokensResponse, error) {
	userID, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT id, name, created_at, expires_at, last_used_at FROM auth_tokens WHERE user_id = ? AND revoked_at IS NULL ORDER BY created_at DESC, id`), userID)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list tokens: %v", err)
	}
	defer rows.Close()
	out := &apiv1.ListTokensResponse{}
	for rows.Next() {
		var t apiv1.Token
		var created int64
		var expires, used sql.NullInt64
		if err := rows.Scan(&t.Id, &t.Name, &created, &expires, &used); err != nil {
			return nil, status.Errorf(codes.Internal, "list tokens: %v", err)
		}
		t.CreatedAt = timestamppb.New(time.Unix(0, created))
		if expires.Valid {
			t.ExpiresAt = timestamppb.New(time.Unix(0, expires.Int64))
		}
		if used.Valid {
			t.LastUsedAt = timestamppb.New(time.Unix(0, used.Int64))
		}
		out.Tokens = append(out.Tokens, &t)
	}
	if err := rows.Err(); err != nil {
		return nil, status.Errorf(codes.Internal, "list tokens: %v", err)
	}
	return out, nil
}

// RevokeToken revokes one of the caller's tokens. Anyone else's token is NotFound, the
// same answer as an unknown id, so ids of other users' tokens cannot be probed.
func (s *Service) RevokeToken(ctx context.Context, req *apiv1.RevokeTokenRequest) (*emptypb.Empty, error) {
	userID, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	res, err := s.db.ExecContext(ctx, s.db.Q(`UPDATE auth_tokens SET revoked_at = ? WHERE id = ? AND user_id = ? AND revoked_at IS NULL`), s.Now().UnixNano(), req.GetId(), userID)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "revoke token: %v", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return nil, status.Error(codes.NotFound, "no such token")
	}
	if s.OnRevoke != nil {
		s.OnRevoke(req.GetId())
	}
	return &emptypb.Empty{}, nil
}
