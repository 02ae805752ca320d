package service

import (
	"context"
	"database/sql"
	"errors"
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
		orgID, orgName, err := s.tokenOrg(ctx, tx, userID, req.GetOrganization())
		if err != nil {
			return err
		}
		t.Organization = orgName
		var active int
		if err := tx.QueryRowContext(ctx, s.db.Q(`SELECT COUNT(*) FROM auth_tokens WHERE user_id = ? AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)`), userID, now.UnixNano()).Scan(&active); err != nil {
			return err
		}
		if active >= MaxActiveTokens {
			return status.Errorf(codes.ResourceExhausted, "you hold %d active tokens, the most allowed: revoke one first", active)
		}
		return s.insertToken(ctx, tx, token, t.Id, userID, orgID, t.Name, now, life)
	})
	if _, ok := status.FromError(err); ok && err != nil {
		return nil, err
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "create token: %v", err)
	}
	return t, nil
}

// tokenOrg resolves the organisation a new token of userID is bound to: the one named
// (empty: the user's own), where the user must be a member; any other is NotFound, the
// same answer as an unknown name.
func (s *Service) tokenOrg(ctx context.Context, tx *sql.Tx, userID, name string) (orgID, orgName string, err error) {
	if name == "" {
		// The organisation the calling token acts in (a token made while working in an
		// organisation works there too), else the user's own.
		current := ""
		if p, ok := auth.PrincipalFrom(ctx); ok {
			current = p.GetOrgId()
		}
		err = tx.QueryRowContext(ctx, s.db.Q(`SELECT o.id, o.name FROM auth_users u
			JOIN auth_memberships m ON m.user_id = u.id AND (m.org_id = ? OR m.org_id = u.org_id)
			JOIN auth_orgs o ON o.id = m.org_id
			WHERE u.id = ? ORDER BY CASE WHEN m.org_id = ? THEN 0 ELSE 1 END LIMIT 1`), current, userID, current).
			Scan(&orgID, &orgName)
		if errors.Is(err, sql.ErrNoRows) {
			err = status.Error(codes.NotFound, "you are no member of your own organisation: name one of yours in organization (GET /api/v1/organizations)")
		}
		return
	}
	err = tx.QueryRowContext(ctx, s.db.Q(`SELECT o.id, o.name FROM auth_orgs o JOIN auth_memberships m ON m.org_id = o.id WHERE o.name = ? AND m.user_id = ?`), name, userID).
		Scan(&orgID, &orgName)
	if errors.Is(err, sql.ErrNoRows) {
		err = status.Errorf(codes.NotFound, "no organisation %q among yours", name)
	}
	return
}

// insertToken stores the hash of a new API token of userID acting in orgID, expiring
// after life.
func (s *Service) insertToken(ctx context.Context, tx *sql.Tx, token, tokenID, userID, orgID, name string, now time.Time, life time.Duration) error {
	_, err := tx.ExecContext(ctx, s.db.Q(`INSERT INTO auth_tokens (hash, id, user_id, org_id, name, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		hash(token), tokenID, userID, orgID, name, now.UnixNano(), now.Add(life).UnixNano())
	return err
}

// ListTokens lists the caller's tokens that are not revoked, newest first.
func (s *Service) ListTokens(ctx context.Context, _ *apiv1.ListTokensRequest) (*apiv1.ListTokensResponse, error) {
	userID, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(`SELECT t.id, t.name, t.created_at, t.expires_at, t.last_used_at, COALESCE(o.name, '')
		FROM auth_tokens t JOIN auth_users u ON u.id = t.user_id LEFT JOIN auth_orgs o ON o.id = COALESCE(t.org_id, u.org_id)
		WHERE t.user_id = ? AND t.revoked_at IS NULL ORDER BY t.created_at DESC, t.id`), userID)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "list tokens: %v", err)
	}
	defer rows.Close()
	out := &apiv1.ListTokensResponse{}
	for rows.Next() {
		var t apiv1.Token
		var created int64
		var expires, used sql.NullInt64
		if err := rows.Scan(&t.Id, &t.Name, &created, &expires, &used, &t.Organization); err != nil {
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
