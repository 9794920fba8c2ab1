package vault

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/vigil-signer/vigil/keystore"
)

// authenticate sets the client's token (checking it) or logs in with AppRole. It returns the auth
// information the lifetime watcher needs, nil when there is nothing to renew.
func (s *Store) authenticate(ctx context.Context) (*api.Secret, error) {
	if s.cfg.Token == "" {
		return s.loginAppRole(ctx)
	}
	s.client.SetToken(s.cfg.Token)
	sec, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		if vaultStatus(err) == http.StatusForbidden {
			return nil, s.unavailable("token", "invalid, expired or revoked (lookup-self: permission denied)")
		}
		return nil, s.failure(ctx, "GET auth/token/lookup-self", err)
	}
	ttl, _ := sec.TokenTTL()
	renewable, _ := sec.TokenIsRenewable()
	if ttl > 0 && !renewable {
		s.log.Warn("vault token is not renewable; it will expire", "ttl", ttl.String())
	}
	if ttl <= 0 || !renewable {
		return nil, nil
	}
	return &api.Secret{Auth: &api.SecretAuth{ClientToken: s.cfg.Token, Renewable: true, LeaseDuration: int(ttl / time.Second)}}, nil
}

// loginAppRole logs in and installs the new token.
func (s *Store) loginAppRole(ctx context.Context) (*api.Secret, error) {
	path := "auth/" + s.cfg.AppRoleMount + "/login"
	// The login request carries no token (an expired one would only be noise).
	s.client.ClearToken()
	sec, err := s.client.Logical().WriteWithContext(ctx, path, map[string]any{
		"role_id":   s.cfg.RoleID,
		"secret_id": s.cfg.SecretID,
	})
	if err != nil {
		switch vaultStatus(err) {
		case http.StatusBadRequest, http.StatusForbidden:
			return nil, s.unavailable("AppRole login at "+path, "rejected: "+vaultMessages(err, "invalid role ID or secret ID"))
		case http.StatusNotFound:
			return nil, s.unavailable("AppRole login at "+path, "no AppRole auth method at auth/"+s.cfg.AppRoleMount+"/")
		}
		return nil, s.failure(ctx, "PUT "+path, err)
	}
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		return nil, s.unavailable("AppRole login at "+path, "no token in the response (is it an AppRole mount?)")
	}
	s.client.SetToken(sec.Auth.ClientToken)
	s.stateMu.Lock()
	s.login = true
	s.stateMu.Unlock()
	if sec.Auth.LeaseDuration <= 0 {
		return nil, nil // a token without TTL needs no renewal
	}
	return sec, nil
}

// call runs fn; when it fails with 403, the store uses AppRole and the token is no longer valid,
// it logs in again (once for all concurrent callers holding the same stale token) and retries fn
// once.
func (s *Store) call(ctx context.Context, fn func() error) error {
	stale := s.client.Token()
	err := fn()
	if err == nil || s.cfg.RoleID == "" || vaultStatus(err) != http.StatusForbidden || ctx.Err() != nil {
		return err
	}
	if s.client.Token() == stale && s.tokenCheck(ctx) == nil {
		return err // a valid token lacking a policy: logging in again would not help
	}
	if lerr := s.relogin(ctx, stale); lerr != nil {
		return err
	}
	return fn()
}

// relogin logs in with AppRole unless another goroutine already replaced the stale token.
func (s *Store) relogin(ctx context.Context, stale string) error {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	if s.client.Token() != stale && s.client.Token() != "" {
		return nil
	}
	_, err := s.loginAppRole(ctx)
	if err != nil {
		s.setRenewErr(err)
		return err
	}
	s.log.Info("vault: logged in again with AppRole after a permission-denied response")
	return nil
}

// maintain renews the token while it can; for AppRole it logs in again when the token reaches its
// max TTL. It runs until ctx is cancelled (Close).
func (s *Store) maintain(ctx context.Context, auth *api.Secret) {
	defer close(s.done)
	for auth != nil {
		w, err := s.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: auth})
		if err != nil {
			s.setRenewErr(fmt.Errorf("vault: token renewal: %w", err))
			s.log.Error("vault: cannot watch the token lifetime", "error", err)
			return
		}
		finished := make(chan struct{})
		go func() { defer close(finished); w.Start() }()
		var doneErr error
	watch:
		for {
			select {
			case <-ctx.Done():
				w.Stop()
				<-finished
				return
			case r := <-w.RenewCh():
				s.setRenewErr(nil)
				if r != nil && r.Secret != nil && r.Secret.Auth != nil {
					s.log.Debug("vault: token renewed", "ttl", time.Duration(r.Secret.Auth.LeaseDuration)*time.Second)
				}
			case <-finished:
				select {
				case doneErr = <-w.DoneCh():
				default:
				}
				break watch
			}
		}
		if s.cfg.RoleID == "" {
			err := fmt.Errorf("%w: vault at %s: token can no longer be renewed (max TTL reached or renewal refused); it will expire", keystore.ErrUnavailable, s.cfg.Address)
			if doneErr != nil {
				err = fmt.Errorf("%w: %s", err, vaultReason(doneErr))
			}
			s.setRenewErr(err)
			s.log.Warn("vault: token renewal ended; restart with a new token before it expires", "error", err)
			return
		}
		auth = s.reloginLoop(ctx)
	}
}

// reloginLoop logs in with AppRole until it succeeds or ctx ends (nil then).
func (s *Store) reloginLoop(ctx context.Context) *api.Secret {
	wait := time.Second
	for {
		s.authMu.Lock()
		auth, err := s.loginAppRole(ctx)
		s.authMu.Unlock()
		if err == nil {
			s.setRenewErr(nil)
			s.log.Info("vault: logged in again with AppRole (token reached its max TTL)")
			if auth == nil {
				// No TTL: nothing to watch; stay until Close.
				<-ctx.Done()
			}
			return auth
		}
		s.setRenewErr(err)
		s.log.Error("vault: AppRole login failed; retrying", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

func (s *Store) setRenewErr(err error) {
	s.stateMu.Lock()
	s.renewErr = err
	s.stateMu.Unlock()
}

// revokeLogin revokes the token of an AppRole login (best effort).
func (s *Store) revokeLogin() {
	s.stateMu.Lock()
	login := s.login
	s.stateMu.Unlock()
	if !login {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.client.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
		s.log.Debug("vault: revoking the AppRole token failed", "error", vaultReason(err))
	}
}
