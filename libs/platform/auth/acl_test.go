package auth

import (
	"slices"
	"strings"
	"testing"

	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	authv1 "github.com/simpleci/simpleci/proto/simpleci/auth/v1"
	runnerv1 "github.com/simpleci/simpleci/proto/simpleci/runner/v1"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionalphapb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// TestACLCoversEveryMethod: every gRPC method of SimpleCI's protos and of the health
// service has an entry in the ACL (a new RPC must be given its callers, or it is refused
// to everyone), and the ACL names no method that does not exist.
func TestACLCoversEveryMethod(t *testing.T) {
	// Link every service's descriptor (the imports above register them).
	_ = []any{apiv1.File_simpleci_api_v1_projects_proto, runnerv1.File_simpleci_runner_v1_runner_proto,
		authv1.File_simpleci_auth_v1_auth_proto, healthpb.File_grpc_health_v1_health_proto, health.NewServer,
		reflectionpb.File_grpc_reflection_v1_reflection_proto, reflectionalphapb.File_grpc_reflection_v1alpha_reflection_proto}
	var methods []string
	protoregistry.GlobalFiles.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		pkg := string(f.Package())
		if !strings.HasPrefix(pkg, "simpleci.") && pkg != "grpc.health.v1" && !strings.HasPrefix(pkg, "grpc.reflection.") {
			return true
		}
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			for j := range svc.Methods().Len() {
				methods = append(methods, "/"+string(svc.FullName())+"/"+string(svc.Methods().Get(j).Name()))
			}
		}
		return true
	})
	if len(methods) < 25 {
		t.Fatalf("found only %d methods: the registry lacks some services (%v)", len(methods), methods)
	}
	if missing := Unlisted(methods, nil); len(missing) > 0 {
		t.Errorf("methods without an ACL entry (give each its callers in acl.go): %v", missing)
	}
	for m := range ACL {
		if !slices.Contains(methods, m) {
			t.Errorf("ACL entry %s names no method", m)
		}
	}
}

func TestAllowed(t *testing.T) {
	user := &authv1.Principal{UserId: "u1", OrgId: "o1", Login: "alice"}
	runner := &authv1.Principal{Runner: "r1", Login: "runner:r1"}
	svc := func(name string) *authv1.Principal { return &authv1.Principal{Service: name} }
	tests := []struct {
		method string
		p      *authv1.Principal
		want   bool
	}{
		{apiv1.ProjectInternalService_ResolveProject_FullMethodName, svc(Gateway), true},
		{apiv1.ProjectInternalService_ResolveProject_FullMethodName, svc(Scheduler), true},
		{apiv1.ProjectInternalService_ResolveProject_FullMethodName, svc(Log), false},
		{apiv1.ProjectInternalService_ResolveProject_FullMethodName, runner, false},
		{apiv1.ProjectInternalService_ResolveProject_FullMethodName, user, false},
		{apiv1.ProjectInternalService_JobSecrets_FullMethodName, svc(Scheduler), true},
		{apiv1.ProjectInternalService_JobSecrets_FullMethodName, svc(Gateway), false},
		{apiv1.ProjectInternalService_JobSecrets_FullMethodName, runner, false},
		{apiv1.ProjectService_ListSecrets_FullMethodName, runner, false},
		{apiv1.ProjectService_ListSecrets_FullMethodName, user, true},
		{apiv1.ProjectService_SetSecret_FullMethodName, svc(Gateway), false},
		{apiv1.RunService_ListTiers_FullMethodName, svc(Project), true},
		{apiv1.RunService_ListTiers_FullMethodName, svc(Gateway), true}, // the API document's tier enum
		{apiv1.RunService_ListTiers_FullMethodName, svc(Log), false},
		{apiv1.RunService_ListTiers_FullMethodName, runner, false},
		{apiv1.RunService_CancelRun_FullMethodName, runner, false},
		{apiv1.LogService_TailLogs_FullMethodName, runner, false},
		{apiv1.RunnerTokenService_RegisterRunner_FullMethodName, runner, false},
		{runnerv1.RunnerService_Report_FullMethodName, runner, true},
		{runnerv1.RunnerService_Report_FullMethodName, svc(Scheduler), false},
		{runnerv1.RunnerService_Report_FullMethodName, user, false},
		{runnerv1.RunnerLogService_AppendLogs_FullMethodName, runner, true},
		{runnerv1.RunnerLogService_AppendLogs_FullMethodName, user, false},
		{runnerv1.RunnerLogService_AppendLogs_FullMethodName, svc(Scheduler), false},
		{runnerv1.RunnerLogService_AppendLogs_FullMethodName, svc(Log), false},
		{apiv1.LogService_GetLogs_FullMethodName, runner, false},
		{authv1.AuthService_VerifyToken_FullMethodName, svc(Log), true},
		{authv1.AuthService_VerifyToken_FullMethodName, runner, false},
		{authv1.AuthService_VerifyToken_FullMethodName, user, false},
		{healthpb.Health_Check_FullMethodName, runner, true},
		{healthpb.Health_Watch_FullMethodName, svc(Gateway), false},
		{"/simpleci.unknown.v1.X/Y", svc(Gateway), false},
		// A principal the ACL does not know is refused everything.
		{apiv1.ProjectService_GetProject_FullMethodName, &authv1.Principal{Login: "nobody"}, false},
		{apiv1.ProjectService_GetProject_FullMethodName, svc("runner"), false},
		{apiv1.ProjectService_GetProject_FullMethodName, nil, false},
	}
	for _, tt := range tests {
		if got := Allowed(tt.method, tt.p); got != tt.want {
			t.Errorf("Allowed(%s, %v) = %v, want %v", tt.method, tt.p, got, tt.want)
		}
	}
}

func TestIdentityToken(t *testing.T) {
	if _, err := IdentityToken("", Gateway); err == nil || !strings.Contains(err.Error(), "SIMPLECI_INTERNAL_TOKEN") {
		t.Fatalf("no secret: %v", err)
	}
	for _, bad := range []string{"runner", "admin", "", "runner/", "runner/Bad_Name", "runner/" + strings.Repeat("a", 64)} {
		if _, err := IdentityToken("s", bad); err == nil {
			t.Errorf("identity %q accepted", bad)
		}
	}
	tok, err := IdentityToken("s", RunnerIdentity("build-1"))
	if err != nil {
		t.Fatal(err)
	}
	p, ok := verifyIdentity("s", tok)
	if !ok || p.GetRunner() != "build-1" || p.GetService() != "" {
		t.Fatalf("runner identity: %v %v", p, ok)
	}
	if _, ok := verifyIdentity("", tok); ok {
		t.Fatal("verified without a secret")
	}
	if strings.Contains(tok, "s.") && strings.HasSuffix(tok, ".s") {
		t.Fatal("the token carries the secret")
	}
}

func TestUnlisted(t *testing.T) {
	methods := []string{apiv1.ProjectService_GetProject_FullMethodName, "/simpleci.x.v1.New/Method", "/public/Method", healthpb.Health_Watch_FullMethodName}
	got := Unlisted(methods, map[string]bool{"/public/Method": true})
	if !slices.Equal(got, []string{"/simpleci.x.v1.New/Method"}) {
		t.Fatalf("Unlisted = %v, want only the new method (listed with no caller and public ones count as listed)", got)
	}
}
