package auth

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fakeVerifier knows a set of tokens and counts the calls it gets.
type fakeVerifier struct {
	mu     sync.Mutex
	calls  map[string]int
	tokens map[string]*authv1.Principal
	err    error // returned for every call when set
}

func (f *fakeVerifier) VerifyToken(_ context.Context, token string) (*authv1.Principal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[token]++
	if f.err != nil {
		return nil, f.err
	}
	p, ok := f.tokens[token]
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "unknown token")
	}
	return p, nil
}

func (f *fakeVerifier) count(token string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[token]
}

var alice = &authv1.Principal{UserId: "u-alice", OrgId: "org-1", Login: "alice", Role: "viewer"}

var gatewayToken = mustIdentity("internal-secret", Gateway)

func mustIdentity(secret, identity string) string {
	t, err := IdentityToken(secret, identity)
	if err != nil {
		panic(err)
	}
	return t
}

func incoming(pairs ...string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs(pairs...))
}

func TestAuthenticate(t *testing.T) {
	tests := []struct {
		name         string
		md           []string
		verifierNil  bool
		verifierErr  error
		wantCode     codes.Code
		wantLogin    string
		wantInternal bool
	}{
		{name: "no metadata", wantCode: codes.Unauthenticated},
		{name: "empty bearer", md: []string{"authorization", "Bearer "}, wantCode: codes.Unauthenticated},
		{name: "other scheme", md: []string{"authorization", "Basic YWxpY2U6cHc="}, wantCode: codes.Unauthenticated},
		{name: "gateway identity", md: []string{"authorization", "Bearer " + gatewayToken}, wantLogin: "service:gateway", wantInternal: true},
		{name: "identity token with spaces", md: []string{"authorization", "Bearer  " + gatewayToken + " "}, wantLogin: "service:gateway", wantInternal: true},
		{name: "identity token cut short", md: []string{"authorization", "Bearer " + gatewayToken[:len(gatewayToken)-1]}, wantCode: codes.Unauthenticated},
		{name: "identity of another deployment", md: []string{"authorization", "Bearer " + mustIdentity("other-secret", Gateway)}, wantCode: codes.Unauthenticated},
		{name: "identity renamed", md: []string{"authorization", "Bearer sid_scheduler" + gatewayToken[len("sid_gateway"):]}, wantCode: codes.Unauthenticated},
		{name: "in-process runner identity", md: []string{"authorization", "Bearer " + mustIdentity("internal-secret", RunnerIdentity("r1"))}, wantLogin: "runner:r1"},
		{name: "the raw internal token", md: []string{"authorization", "Bearer internal-secret"}, wantCode: codes.Unauthenticated},
		{name: "user token", md: []string{"authorization", "Bearer sci_alice"}, wantLogin: "alice"},
		{name: "second authorization value", md: []string{"authorization", "Basic x", "authorization", "Bearer sci_alice"}, wantLogin: "alice"},
		{name: "unknown user token", md: []string{"authorization", "Bearer sci_nobody"}, wantCode: codes.Unauthenticated},
		{name: "no verifier", md: []string{"authorization", "Bearer sci_alice"}, verifierNil: true, wantCode: codes.Unauthenticated},
		{name: "verifier unauthenticated", md: []string{"authorization", "Bearer sci_alice"}, verifierErr: status.Error(codes.Unauthenticated, "revoked"), wantCode: codes.Unauthenticated},
		{name: "verifier unavailable", md: []string{"authorization", "Bearer sci_alice"}, verifierErr: status.Error(codes.Unavailable, "auth down"), wantCode: codes.Unavailable},
		{name: "verifier internal", md: []string{"authorization", "Bearer sci_alice"}, verifierErr: status.Error(codes.Internal, "db broken"), wantCode: codes.Unavailable},
		{name: "verifier deadline", md: []string{"authorization", "Bearer sci_alice"}, verifierErr: context.DeadlineExceeded, wantCode: codes.Unavailable},
		{name: "verifier plain error", md: []string{"authorization", "Bearer sci_alice"}, verifierErr: errors.New("dial tcp: refused"), wantCode: codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &fakeVerifier{tokens: map[string]*authv1.Principal{"sci_alice": alice}, err: tt.verifierErr}
			a := &Authenticator{Verifier: v, InternalToken: "internal-secret"}
			if tt.verifierNil {
				a.Verifier = nil
			}
			ctx := context.Background()
			if tt.md != nil {
				ctx = incoming(tt.md...)
			}
			got, err := a.Authenticate(ctx)
			if tt.wantCode != codes.OK {
				if status.Code(err) != tt.wantCode {
					t.Fatalf("Authenticate: %v, want code %s", err, tt.wantCode)
				}
				if got != nil {
					t.Fatal("a refused call returned a context")
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			p, ok := PrincipalFrom(got)
			if !ok || p.GetLogin() != tt.wantLogin {
				t.Fatalf("principal %v (ok %v), want login %q", p, ok, tt.wantLogin)
			}
			if IsInternal(got) != tt.wantInternal {
				t.Fatalf("IsInternal = %v, want %v", IsInternal(got), tt.wantInternal)
			}
			if tt.wantInternal && (p.GetAdmin() || p.GetUserId() != "" || p.GetOrgId() != "") {
				t.Fatalf("service principal %v: want no admin, no user, no org", p)
			}
		})
	}
}

func TestInternalTokenDisabled(t *testing.T) {
	// With no internal token configured, every token goes to the verifier.
	v := &fakeVerifier{}
	a := &Authenticator{Verifier: v}
	_, err := a.Authenticate(incoming("authorization", "Bearer x"))
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("got %v, want Unauthenticated", err)
	}
	if v.count("x") != 1 {
		t.Fatalf("the token should have gone to the verifier")
	}
}

func TestZeroAuthenticatorRefusesEverything(t *testing.T) {
	var a Authenticator
	for _, md := range [][]string{nil, {"authorization", "Bearer anything"}, {"authorization", "Bearer "}} {
		ctx := context.Background()
		if md != nil {
			ctx = incoming(md...)
		}
		if _, err := a.Authenticate(ctx); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("metadata %v: %v, want Unauthenticated", md, err)
		}
	}
}

func TestUserTokenCache(t *testing.T) {
	bob := &authv1.Principal{UserId: "u-bob", OrgId: "org-2", Login: "bob"}
	v := &fakeVerifier{tokens: map[string]*authv1.Principal{"sci_alice": alice, "sci_bob": bob}}
	a := &Authenticator{Verifier: v, InternalToken: "internal-secret"}

	login := func(token string) string {
		t.Helper()
		ctx, err := a.Authenticate(incoming("authorization", "Bearer "+token))
		if err != nil {
			t.Fatalf("Authenticate(%s): %v", token, err)
		}
		p, _ := PrincipalFrom(ctx)
		return p.GetLogin()
	}

	t.Run("second call within the TTL uses the cache", func(t *testing.T) {
		if got := login("sci_alice"); got != "alice" {
			t.Fatalf("login %q", got)
		}
		if got := login("sci_alice"); got != "alice" {
			t.Fatalf("login %q", got)
		}
		if n := v.count("sci_alice"); n != 1 {
			t.Fatalf("verifier called %d times, want 1", n)
		}
	})
	t.Run("tokens are cached separately", func(t *testing.T) {
		if got := login("sci_bob"); got != "bob" {
			t.Fatalf("login %q", got)
		}
		if n := v.count("sci_bob"); n != 1 {
			t.Fatalf("verifier called %d times for bob, want 1", n)
		}
		if got := login("sci_alice"); got != "alice" {
			t.Fatalf("login %q: cache mixed up tokens", got)
		}
	})
	t.Run("identity tokens never reach the verifier", func(t *testing.T) {
		login(gatewayToken)
		if n := v.count(gatewayToken); n != 0 {
			t.Fatalf("verifier called %d times with an identity token", n)
		}
	})
	t.Run("refusals are not cached", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			if _, err := a.Authenticate(incoming("authorization", "Bearer sci_revoked")); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("got %v", err)
			}
		}
		if n := v.count("sci_revoked"); n != 2 {
			t.Fatalf("verifier called %d times for a refused token, want 2", n)
		}
	})
	t.Run("verifier outages are not cached", func(t *testing.T) {
		v2 := &fakeVerifier{tokens: map[string]*authv1.Principal{"sci_alice": alice}, err: status.Error(codes.Unavailable, "down")}
		a2 := &Authenticator{Verifier: v2}
		if _, err := a2.Authenticate(incoming("authorization", "Bearer sci_alice")); status.Code(err) != codes.Unavailable {
			t.Fatalf("got %v", err)
		}
		v2.mu.Lock()
		v2.err = nil
		v2.mu.Unlock()
		if _, err := a2.Authenticate(incoming("authorization", "Bearer sci_alice")); err != nil {
			t.Fatalf("after the verifier recovered: %v", err)
		}
	})
	t.Run("expired entries are verified again", func(t *testing.T) {
		a.mu.Lock()
		c := a.cache["sci_alice"]
		if c.p == nil {
			a.mu.Unlock()
			t.Fatal("sci_alice is not cached")
		}
		if d := time.Until(c.expires); d <= 0 || d > CacheTTL {
			a.mu.Unlock()
			t.Fatalf("cache entry expires in %s, want within %s", d, CacheTTL)
		}
		c.expires = time.Now().Add(-time.Second)
		a.cache["sci_alice"] = c
		a.mu.Unlock()
		before := v.count("sci_alice")
		login("sci_alice")
		if n := v.count("sci_alice"); n != before+1 {
			t.Fatalf("verifier called %d more times after expiry, want 1", n-before)
		}
	})
}

// A cached principal is trusted neither past its token's expiry nor after Forget.
func TestCacheHonoursExpiryAndRevocation(t *testing.T) {
	soon := &authv1.Principal{UserId: "u-bob", OrgId: "org-1", Login: "bob", TokenId: "t-soon",
		ExpiresAt: timestamppb.New(time.Now().Add(time.Second))}
	later := &authv1.Principal{UserId: "u-bob", OrgId: "org-1", Login: "bob", TokenId: "t-later",
		ExpiresAt: timestamppb.New(time.Now().Add(time.Hour))}
	v := &fakeVerifier{tokens: map[string]*authv1.Principal{"sci_soon": soon, "sci_later": later}}
	a := &Authenticator{Verifier: v}
	for _, tok := range []string{"sci_soon", "sci_later"} {
		if _, err := a.Authenticate(incoming("authorization", "Bearer "+tok)); err != nil {
			t.Fatal(err)
		}
	}
	a.mu.Lock()
	if d := time.Until(a.cache["sci_soon"].expires); d > time.Second {
		t.Errorf("a token expiring in 1s is cached for %s", d)
	}
	if d := time.Until(a.cache["sci_later"].expires); d > CacheTTL {
		t.Errorf("a token expiring in 1h is cached for %s, more than %s", d, CacheTTL)
	}
	a.mu.Unlock()

	a.Forget("t-later")
	a.Forget("") // no token has an empty id worth forgetting: nothing happens
	if _, err := a.Authenticate(incoming("authorization", "Bearer sci_later")); err != nil {
		t.Fatal(err)
	}
	if n := v.count("sci_later"); n != 2 {
		t.Fatalf("after Forget the verifier was called %d times in all, want 2", n)
	}
	if n := v.count("sci_soon"); n != 1 {
		t.Fatalf("Forget of another token dropped sci_soon too (%d calls)", n)
	}
}

func TestIsInternal(t *testing.T) {
	tests := []struct {
		name string
		p    *authv1.Principal
		want bool
	}{
		{"no principal", nil, false},
		{"service", &authv1.Principal{Login: "service:gateway", Service: Gateway}, true},
		{"runner", &authv1.Principal{Login: "runner:r1", Runner: "r1"}, false},
		{"user claiming a service", &authv1.Principal{UserId: "u1", Login: "x", Service: Gateway}, false},
		{"admin user", &authv1.Principal{UserId: "u1", OrgId: "o", Login: "admin", Admin: true}, false},
		{"empty principal", &authv1.Principal{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.p != nil {
				ctx = WithPrincipal(ctx, tt.p)
			}
			if got := IsInternal(ctx); got != tt.want {
				t.Fatalf("IsInternal = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRequireOrg(t *testing.T) {
	tests := []struct {
		name     string
		p        *authv1.Principal
		wantOrg  string
		wantCode codes.Code
	}{
		{"no principal", nil, "", codes.Unauthenticated},
		{"a service has no org", &authv1.Principal{Service: Gateway}, "", codes.PermissionDenied},
		{"a runner has no org", &authv1.Principal{Runner: "r1"}, "", codes.PermissionDenied},
		{"user", alice, "org-1", codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.p != nil {
				ctx = WithPrincipal(ctx, tt.p)
			}
			org, err := RequireOrg(ctx)
			if status.Code(err) != tt.wantCode || org != tt.wantOrg {
				t.Fatalf("RequireOrg = %q, %v; want %q, %s", org, err, tt.wantOrg, tt.wantCode)
			}
		})
	}
}

func TestUnaryInterceptor(t *testing.T) {
	const public = "/simpleci.test.v1.Svc/Public"
	private := apiv1.ProjectService_GetProject_FullMethodName
	runner := &authv1.Principal{Login: "runner:r1", Runner: "r1", TokenId: "t1"}
	v := &fakeVerifier{tokens: map[string]*authv1.Principal{"sci_alice": alice, "scr_r1_x": runner}}
	a := &Authenticator{Verifier: v, InternalToken: "internal-secret", Public: map[string]bool{public: true}}
	bearer := func(tok string) []string { return []string{"authorization", "Bearer " + tok} }
	tests := []struct {
		name      string
		method    string
		md        []string
		wantCode  codes.Code
		wantLogin string // "" with OK: the handler sees no principal
	}{
		{"public without token", public, nil, codes.OK, ""},
		{"public with bad token", public, []string{"authorization", "Bearer nope"}, codes.OK, ""},
		{"private without token", private, nil, codes.Unauthenticated, ""},
		{"private with bad token", private, []string{"authorization", "Bearer sci_nope"}, codes.Unauthenticated, ""},
		{"private with user token", private, []string{"authorization", "Bearer sci_alice"}, codes.OK, "alice"},
		{"private with the raw internal token", private, bearer("internal-secret"), codes.Unauthenticated, ""},
		{"a user method with a service identity", private, bearer(gatewayToken), codes.PermissionDenied, ""},
		{"a user method with a runner token", private, bearer("scr_r1_x"), codes.PermissionDenied, ""},
		{"ResolveProject with the gateway's identity", apiv1.ProjectInternalService_ResolveProject_FullMethodName, bearer(gatewayToken), codes.OK, "service:gateway"},
		{"ResolveProject with a runner token", apiv1.ProjectInternalService_ResolveProject_FullMethodName, bearer("scr_r1_x"), codes.PermissionDenied, ""},
		{"JobSecrets with a runner token", apiv1.ProjectInternalService_JobSecrets_FullMethodName, bearer("scr_r1_x"), codes.PermissionDenied, ""},
		{"JobSecrets with the gateway's identity", apiv1.ProjectInternalService_JobSecrets_FullMethodName, bearer(gatewayToken), codes.PermissionDenied, ""},
		{"JobSecrets with a user token", apiv1.ProjectInternalService_JobSecrets_FullMethodName, bearer("sci_alice"), codes.PermissionDenied, ""},
		{"ClaimJob with a runner token", runnerv1.RunnerService_ClaimJob_FullMethodName, bearer("scr_r1_x"), codes.OK, "runner:r1"},
		{"ClaimJob with the scheduler's identity", runnerv1.RunnerService_ClaimJob_FullMethodName, bearer(mustIdentity("internal-secret", Scheduler)), codes.PermissionDenied, ""},
		{"ClaimJob with a user token", runnerv1.RunnerService_ClaimJob_FullMethodName, bearer("sci_alice"), codes.PermissionDenied, ""},
		{"VerifyToken with a runner token", authv1.AuthService_VerifyToken_FullMethodName, bearer("scr_r1_x"), codes.PermissionDenied, ""},
		{"an unknown method with a service identity", "/simpleci.test.v1.Svc/Private", bearer(gatewayToken), codes.PermissionDenied, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.md != nil {
				ctx = incoming(tt.md...)
			}
			called := false
			h := func(ctx context.Context, req any) (any, error) {
				called = true
				p, ok := PrincipalFrom(ctx)
				if tt.wantLogin == "" && ok {
					t.Errorf("handler got principal %v, want none", p)
				}
				if tt.wantLogin != "" && p.GetLogin() != tt.wantLogin {
					t.Errorf("handler got principal %v, want login %q", p, tt.wantLogin)
				}
				return "resp", nil
			}
			resp, err := a.Unary()(ctx, "req", &grpc.UnaryServerInfo{FullMethod: tt.method}, h)
			if status.Code(err) != tt.wantCode {
				t.Fatalf("interceptor: %v, want %s", err, tt.wantCode)
			}
			if called != (tt.wantCode == codes.OK) {
				t.Fatalf("handler called = %v", called)
			}
			if tt.wantCode == codes.OK && resp != "resp" {
				t.Fatalf("response %v not passed through", resp)
			}
		})
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f fakeStream) Context() context.Context { return f.ctx }

func TestStreamInterceptor(t *testing.T) {
	const public = "/simpleci.test.v1.Svc/Watch"
	private := apiv1.LogService_TailLogs_FullMethodName
	v := &fakeVerifier{tokens: map[string]*authv1.Principal{"sci_alice": alice}}
	a := &Authenticator{Verifier: v, Public: map[string]bool{public: true}}
	tests := []struct {
		name      string
		method    string
		md        []string
		wantCode  codes.Code
		wantLogin string
	}{
		{"public without token", public, nil, codes.OK, ""},
		{"private without token", private, nil, codes.Unauthenticated, ""},
		{"private with user token", private, []string{"authorization", "Bearer sci_alice"}, codes.OK, "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.md != nil {
				ctx = incoming(tt.md...)
			}
			called := false
			h := func(_ any, ss grpc.ServerStream) error {
				called = true
				p, ok := PrincipalFrom(ss.Context())
				if tt.wantLogin == "" && ok {
					t.Errorf("handler got principal %v", p)
				}
				if tt.wantLogin != "" && p.GetLogin() != tt.wantLogin {
					t.Errorf("handler got principal %v, want %q", p, tt.wantLogin)
				}
				return nil
			}
			err := a.Stream()(nil, fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: tt.method}, h)
			if status.Code(err) != tt.wantCode || called != (tt.wantCode == codes.OK) {
				t.Fatalf("interceptor: %v (handler called %v), want %s", err, called, tt.wantCode)
			}
		})
	}
}

// TestDialPresentsToken runs a real gRPC server with the interceptor and checks that a
// connection from Dial authenticates with its token, and one without a token does not.
func TestDialPresentsToken(t *testing.T) {
	a := &Authenticator{InternalToken: "internal-secret"}
	var mu sync.Mutex
	var seen []string
	record := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		mu.Lock()
		seen = append(seen, info.FullMethod)
		mu.Unlock()
		if !IsInternal(ctx) {
			return nil, status.Error(codes.PermissionDenied, "handler did not see the internal principal")
		}
		return h(ctx, req)
	}
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(a.Unary(), record))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(l)
	t.Cleanup(gs.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tt := range []struct {
		name, token string
		want        codes.Code
	}{
		{"the project's identity", mustIdentity("internal-secret", Project), codes.OK},
		{"the raw internal token", "internal-secret", codes.Unauthenticated},
		{"wrong token", "other", codes.Unauthenticated},
		{"no token", "", codes.Unauthenticated},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := Dial(l.Addr().String(), tt.token)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if status.Code(err) != tt.want {
				t.Fatalf("Check: %v, want %s", err, tt.want)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 {
		t.Fatalf("handler chain reached %d times, want once (only the authenticated call): %v", len(seen), seen)
	}
}
