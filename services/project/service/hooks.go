package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/simpleci/simpleci/libs/forge"
	apiv1 "github.com/simpleci/simpleci/proto/simpleci/api/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ReasonForge is the ErrorInfo reason of an error the forge (GitHub) caused: the
// gateway answers it with 502 Bad Gateway.
const ReasonForge = "FORGE_FAILED"

// hookTimeout bounds one call to the forge about a hook.
const hookTimeout = 20 * time.Second

// LivenessTimeout bounds GetProject's question to the forge about the hook's last
// delivery: a slow GitHub must not make the project page slow.
const LivenessTimeout = 3 * time.Second

// WithPublicURL sets the external base URL (--public-url) webhooks are delivered to:
// a project of a forge that manages hooks (github) gets a hook for
// PUBLIC-URL/api/v1/webhooks/{provider}/{project}. Empty: no hook is registered.
func (s *Service) WithPublicURL(u string) { s.publicURL = strings.TrimSuffix(u, "/") }

// hooks returns the project's forge when it registers hooks and a public URL is set.
func (s *Service) hooks(provider string) forge.HookManager {
	if s.forges == nil || s.publicURL == "" {
		return nil
	}
	f, err := s.forges.Lookup(provider)
	if err != nil {
		return nil
	}
	hm, _ := f.(forge.HookManager)
	return hm
}

// hookOf is the hook a project wants: deliveries to its webhook path, signed with
// its secret, for its events.
func (s *Service) hookOf(p *apiv1.Project, secret string) forge.Hook {
	return forge.Hook{URL: s.publicURL + p.WebhookPath, Secret: secret, Events: p.Events}
}

// withWebhook shows the project's hook (none when id is 0).
func withWebhook(p *apiv1.Project, id int64) {
	if id == 0 {
		p.Webhook = nil
		return
	}
	active := slices.ContainsFunc(p.Events, func(e string) bool {
		return e == forge.EventPush || e == forge.EventTag || e == forge.EventPullRequest
	})
	p.Webhook = &apiv1.ProjectWebhook{Id: id, Active: active}
}

// forgeError is the API's answer to a forge that failed: 502 through the gateway
// (ReasonForge), saying what was not done and never the secret (the forge's errors
// name the repository and GitHub's message only).
func forgeError(provider, what string, err error) error {
	msg := fmt.Sprintf("%s: %s failed: %s", what, provider, forge.Bound(trimForge(err)))
	if errors.Is(err, forge.ErrNotFound) {
		msg += " (the server's token needs admin rights on the repository: scope admin:repo_hook, or a GitHub App's webhooks write permission)"
	}
	st, derr := status.New(codes.Unavailable, msg).WithDetails(&errdetails.ErrorInfo{Reason: ReasonForge, Domain: "simpleci"})
	if derr != nil {
		return status.Error(codes.Unavailable, msg)
	}
	return st.Err()
}

// createHook registers the hook of a project being created (0 when its forge
// manages no hooks).
func (s *Service) createHook(ctx context.Context, p *apiv1.Project, secret string) (int64, error) {
	hm := s.hooks(p.Provider)
	if hm == nil {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	id, err := hm.CreateHook(ctx, p.Repository, s.hookOf(p, secret))
	if err != nil {
		return 0, forgeError(p.Provider, "project not created (nothing was stored): registering its webhook", err)
	}
	return id, nil
}

// updateHook gives the project's hook its events; a hook removed on the forge
// meanwhile is registered anew. It returns the hook's id.
func (s *Service) updateHook(ctx context.Context, p *apiv1.Project, secret string, id int64) (int64, error) {
	hm := s.hooks(p.Provider)
	if hm == nil || id == 0 {
		return id, nil
	}
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	err := hm.UpdateHook(ctx, p.Repository, id, s.hookOf(p, secret))
	if errors.Is(err, forge.ErrNotFound) {
		if id, err = hm.CreateHook(ctx, p.Repository, s.hookOf(p, secret)); err == nil {
			return id, nil
		}
	}
	if err != nil {
		return 0, forgeError(p.Provider, "project not updated (nothing was changed): updating its webhook", err)
	}
	return id, nil
}

// deleteHook removes the project's hook; one already gone is fine.
func (s *Service) deleteHook(ctx context.Context, p *apiv1.Project, id int64) error {
	hm := s.hooks(p.Provider)
	if hm == nil || id == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	if err := hm.DeleteHook(ctx, p.Repository, id); err != nil {
		return forgeError(p.Provider, "project not deleted (nothing was removed): deleting its webhook", err)
	}
	return nil
}

// hookLiveness adds the hook's last delivery as the forge reports it (GitHub's
// last_response) to p's webhook; when the forge cannot be asked within
// LivenessTimeout, it says why instead and the project is shown all the same.
func (s *Service) hookLiveness(ctx context.Context, p *apiv1.Project) {
	if p.Webhook == nil || s.forges == nil {
		return
	}
	f, err := s.forges.Lookup(p.Provider)
	if err != nil {
		p.Webhook.LastResponseUnavailable = "the forge " + p.Provider + " is not served here"
		return
	}
	hi, ok := f.(forge.HookInspector)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, LivenessTimeout)
	defer cancel()
	st, err := hi.HookStatus(ctx, p.Repository, p.Webhook.Id)
	switch {
	case errors.Is(err, forge.ErrNotFound):
		p.Webhook.LastResponseUnavailable = p.Provider + " no longer has this hook (404): change the project's events to register it again"
	case err != nil:
		p.Webhook.LastResponseUnavailable = forge.Bound(fmt.Sprintf("%s could not be asked: %s", p.Provider, trimForge(err)))
	default:
		p.Webhook.LastResponse = &apiv1.HookResponse{Code: int32(st.LastCode), Status: st.LastStatus, Message: st.LastMessage}
	}
}
