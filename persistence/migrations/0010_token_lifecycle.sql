-- Issue 16: tokens a user (or an operator) can revoke (DESIGN §2, §5.5).
-- Every access/refresh token carries the user's token_version; the API refuses a token
-- whose version is not the current one. The trigger bumps it on any role or password
-- change, however made (the API, `boxoffice create-admin`, or plain SQL), so a demotion or
-- a password reset revokes every token issued before it. logout-all bumps it by hand.
ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;

CREATE FUNCTION users_bump_token_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.role IS DISTINCT FROM OLD.role
       OR NEW.password_hash IS DISTINCT FROM OLD.password_hash THEN
        NEW.token_version := GREATEST(NEW.token_version, OLD.token_version + 1);
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER users_token_version BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION users_bump_token_version();

-- One token revoked by POST /api/auth/logout (or a refresh token rotated), kept until it
-- would have expired anyway.
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX revoked_tokens_user_idx ON revoked_tokens (user_id, expires_at);

-- Every API process keeps a cache of account states (role, token_version, revoked ids) and
-- LISTENs here: a change evicts the user at once, whoever made it.
CREATE FUNCTION notify_account_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'revoked_tokens' THEN
        PERFORM pg_notify('boxoffice_accounts', NEW.user_id::text);
    ELSE
        PERFORM pg_notify('boxoffice_accounts', OLD.id::text);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER users_account_change AFTER UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION notify_account_change();
CREATE TRIGGER revoked_tokens_account_change AFTER INSERT ON revoked_tokens
    FOR EACH ROW EXECUTE FUNCTION notify_account_change();
