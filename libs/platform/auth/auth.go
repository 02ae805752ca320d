// Package auth authenticates and authorises gRPC callers: users and runners by their
// tokens (verified by the auth service), peer services by their identity tokens (derived
// from the deployment's secret, identity.go), and every call against the one table of
// who may call what (acl.go).
package auth

import (
	"context"
	"crypto/subtle"
	"strings"
	"sync"
	"time"

	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Verifier resolves a bearer token to the principal it belongs to.
type Verifier interface {
	VerifyToken(ctx context.Context, token string) (*authv1.Principal, error)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *authv1.Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the authenticated caller of the current call.
func PrincipalFrom(ctx context.Context) (*authv1.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*authv1.Principal)
	return p, ok
}

// IsInternal reports whether the caller is a peer service (one of ServiceIdentities;
// not a user, not a runner).
func IsInternal(ctx context.Context) bool {
	p, ok := PrincipalFrom(ctx)
	return ok && p.GetService() != "" && p.GetRunner() == "" && p.GetUserId() == ""
}

// IsService reports whether the caller is the peer service named service.
func IsService(ctx context.Context, service string) bool {
	p, ok := PrincipalFrom(ctx)
	return IsInternal(ctx) && ok && p.GetService() == service
}

// Runner returns the name of the calling runner, or false for any other caller.
func Runner(ctx context.Context) (string, bool) {
	p, ok := PrincipalFrom(ctx)
	if !ok || p.GetRunner() == "" || p.GetUserId() != "" || p.GetService() != "" {
		return "", false
	}
	return p.GetRunner(), true
}

// Authenticator checks the bearer token of every call. The zero value refuses everything.
type Authenticator struct {
	// Verifier checks user tokens; nil refuses them.
	Verifier Verifier
	// InternalToken is the deployment's secret: identity tokens derived from it
	// (IdentityToken) authenticate peer services; empty refuses them. The secret itself
	// is not a credential.
	InternalToken string
	// Public lists full method names callable without a token.
	Public map[string]bool

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	p       *authv1.Principal
	expires time.Time
}

// CacheTTL bounds how long a verified token is trusted without asking auth again: a
// token revoked in another process stops working here within CacheTTL (docs/security.md).
// An entry never outlives the token's own expiry, and Forget drops one at once.
const CacheTTL = 5 * time.Second

// Authenticate resolves the token in ctx's incoming metadata.
func (a *Authenticator) Authenticate(ctx context.Context) (context.Context, error) {
	token := bearer(ctx)
	if token == "" {
		return nil, status.Error(codes.Unauthenticated, "missing bearer token: send 'Authorization: Bearer TOKEN'")
	}
	if strings.HasPrefix(token, identityPrefix) {
		p, ok := verifyIdentity(a.InternalToken, token)
		if !ok {
			return nil, status.Error(codes.Unauthenticated, "invalid identity token")
		}
		return WithPrincipal(ctx, p), nil
	}
	if a.InternalToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(a.InternalToken)) == 1 {
		return nil, status.Error(codes.Unauthenticated, "the deployment's internal token is not a credential: services present their identity token (docs/adr/0014-service-identities.md)")
	}
	if a.Verifier == nil {
		return nil, status.Error(codes.Unauthenticated, "invalid token")
	}
	now := time.Now()
	a.mu.Lock()
	if c, ok := a.cache[token]; ok && now.Before(c.expires) {
		a.mu.Unlock()
		return WithPrincipal(ctx, c.p), nil
	}
	a.mu.Unlock()
	p, err := a.Verifier.VerifyToken(ctx, token)
	if err != nil {
		if status.Code(err) == codes.Unauthenticated {
			return nil, status.Error(codes.Unauthenticated, "invalid token")
		}
		return nil, status.Errorf(codes.Unavailable, "verify token: %v", status.Convert(err).Message())
	}
	a.mu.Lock()
	if a.cache == nil || len(a.cache) > 10000 {
		a.cache = map[string]cached{}
	}
	until := now.Add(CacheTTL)
	if exp := p.GetExpiresAt(); exp != nil && exp.AsTime().Before(until) {
		until = exp.AsTime()
	}
	a.cache[token] = cached{p: p, expires: until}
	a.mu.Unlock()
	return WithPrincipal(ctx, p), nil
}

// Forget drops the cached verification of the token with this id (a revoked token), so
// that its next call here asks the auth service again.
func (a *Authenticator) Forget(tokenID string) {
	if tokenID == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, c := range a.cache {
		if c.p.GetTokenId() == tokenID {
			delete(a.cache, k)
		}
	}
}

func bearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if t, ok := strings.CutPrefix(v, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
	}
	return ""
}

// authorize authenticates the caller and checks the ACL for method.
func (a *Authenticator) authorize(ctx context.Context, method string) (context.Context, error) {
	ctx, err := a.Authenticate(ctx)
	if err != nil {
		return nil, err
	}
	p, _ := PrincipalFrom(ctx)
	if !Allowed(method, p) {
		return nil, status.Error(codes.PermissionDenied, denied(method, p))
	}
	if err := permitted(method, p); err != nil {
		return nil, err
	}
	return ctx, nil
}

// Unary is the server interceptor for unary calls: public methods pass, every other
// call is authenticated and checked against the ACL.
func (a *Authenticator) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if a.Public[info.FullMethod] {
			return h(ctx, req)
		}
		ctx, err := a.authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

// Stream is the server interceptor for streaming calls.
func (a *Authenticator) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if a.Public[info.FullMethod] {
			return h(srv, ss)
		}
		ctx, err := a.authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return h(srv, &wrapped{ServerStream: ss, ctx: ctx})
	}
}

type wrapped struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrapped) Context() context.Context { return w.ctx }

// tokenCreds attaches a bearer token to every outgoing call.
type tokenCreds string

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (tokenCreds) RequireTransportSecurity() bool { return false }

// Dial connects to a peer service, presenting token on every call. Connections are lazy:
// Dial does not wait for the peer. extra options (the node's metrics interceptors) come last.
func Dial(addr, token string, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Reconnect to a restarted peer within seconds, not gRPC's default of up to 2 min.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(tokenCreds(token)))
	}
	return grpc.NewClient(addr, append(opts, extra...)...)
}

// RequireOrg returns the caller's organisation, or an error for callers without one.
func RequireOrg(ctx context.Context) (string, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return "", status.Error(codes.Unauthenticated, "not authenticated")
	}
	if p.GetOrgId() == "" {
		return "", status.Error(codes.PermissionDenied, "the caller belongs to no organisation")
	}
	return p.GetOrgId(), nil
}

// ServiceVerifier verifies user tokens with the auth service over gRPC.
type ServiceVerifier struct{ C authv1.AuthServiceClient }

// VerifyToken asks the auth service, with a deadline.
func (v ServiceVerifier) VerifyToken(ctx context.Context, token string) (*authv1.Principal, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return v.C.VerifyToken(ctx, &authv1.VerifyTokenRequest{Token: token})
}
