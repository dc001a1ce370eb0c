-- Two-phase booking: a hold is a booking row too, so Postgres keeps its whole history
-- (HELD, then CONFIRMED, RELEASED or EXPIRED). `expires_at` is the hold's expiry (NULL for a
-- booking that never was a hold); for a hold, `confirmed_at` is when its seats were taken.
ALTER TABLE bookings DROP CONSTRAINT bookings_status_check;
ALTER TABLE bookings ADD CONSTRAINT bookings_status_check
    CHECK (status IN ('CONFIRMED', 'CANCELLED', 'HELD', 'RELEASED', 'EXPIRED'));
ALTER TABLE bookings ADD COLUMN expires_at TIMESTAMPTZ NULL;
