package api

import (
	"context"
	"time"

	"github.com/posthorn/posthorn/internal/events/webhook"
	"github.com/posthorn/posthorn/internal/store"
)

// AlertService is what the APIs need of the alert evaluator.
type AlertService interface {
	// List returns firing and recent alerts visible to tenantID ("" all).
	List(ctx context.Context, tenantID string) ([]store.Alert, error)
	// Release lifts a firing alert's action early.
	Release(ctx context.Context, key string) (*store.Alert, error)
}

// WebhookRequest creates a webhook endpoint.
type WebhookRequest struct {
	Tenant string   `json:"tenant,omitempty"` // admin socket only
	URL    string   `json:"url"`
	Events []string `json:"events"`
}

// WebhookCreated shows the secret once.
type WebhookCreated struct {
	store.WebhookEndpoint
	Secret string `json:"secret"`
}

// CreateWebhook checks req and stores the endpoint for tenantID.
func CreateWebhook(ctx context.Context, st store.Store, tenantID string, req WebhookRequest) (*WebhookCreated, error) {
	e, err := webhook.NewEndpoint(tenantID, req.URL, req.Events, time.Now())
	if err != nil {
		return nil, &BadRequest{Msg: err.Error()}
	}
	if err := st.CreateEndpoint(ctx, e); err != nil {
		return nil, err
	}
	return &WebhookCreated{WebhookEndpoint: e, Secret: e.Secret}, nil
}
