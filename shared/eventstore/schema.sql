-- The event store's schema. "__SCHEMA__" is replaced by the quoted schema name.
-- Idempotent: PostgresEventStore.start() runs it under a transaction-scoped advisory lock, so
-- two processes starting at once cannot race on CREATE ... IF NOT EXISTS.

CREATE SCHEMA IF NOT EXISTS __SCHEMA__;

-- The log. Rows are only ever inserted (see the trigger below).
-- data/metadata are `json`, not `jsonb`: json keeps our exact text, including \u0000 escapes,
-- which jsonb rejects; the store never queries inside them.
CREATE TABLE IF NOT EXISTS __SCHEMA__.events (
    position        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id       text        NOT NULL,
    version         integer     NOT NULL CHECK (version >= 1),
    type            text        NOT NULL,
    schema_version  integer     NOT NULL,
    event_id        text        NOT NULL,
    data            json        NOT NULL,
    metadata        json        NOT NULL,
    recorded_at     timestamptz NOT NULL,
    hash            bytea,      -- shared/eventstore/chain.py; NULL for legacy rows (docs/audit.md)
    CONSTRAINT events_stream_version_uq UNIQUE (stream_id, version),
    CONSTRAINT events_event_id_uq UNIQUE (event_id)
);

-- One row per stream: its head. Lets the version check and `agentlog list` avoid scanning
-- events; written only inside append_events, in the same transaction as the events.
CREATE TABLE IF NOT EXISTS __SCHEMA__.streams (
    stream_id      text        PRIMARY KEY,
    version        integer     NOT NULL,
    first_type     text        NOT NULL,
    last_type      text        NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    last_position  bigint      NOT NULL,
    last_hash      bytea       -- the last event's hash: where the next append chains from
);
CREATE INDEX IF NOT EXISTS streams_last_position_idx ON __SCHEMA__.streams (last_position DESC);
-- stream_heads pages in code-point order, which the default collation may not follow.
CREATE INDEX IF NOT EXISTS streams_id_c_idx ON __SCHEMA__.streams (stream_id COLLATE "C");

-- Databases created before the hash chain: their rows keep a NULL hash and read as legacy.
ALTER TABLE __SCHEMA__.events ADD COLUMN IF NOT EXISTS hash bytea;
ALTER TABLE __SCHEMA__.streams ADD COLUMN IF NOT EXISTS last_hash bytea;
-- The append without hashes: a writer still running the old code fails loudly instead of
-- adding unchained events to chained streams.
DROP FUNCTION IF EXISTS __SCHEMA__.append_events(
    text, integer, text, text, text[], integer[], text[], text[], text[]);

-- The inbox: a consumed message's key, recorded in the transaction that stored its effect.
CREATE TABLE IF NOT EXISTS __SCHEMA__.tracking (
    consumer     text        NOT NULL,
    key          text        NOT NULL,
    position     bigint,
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (consumer, key)
);

-- Followers' progress through read_all.
CREATE TABLE IF NOT EXISTS __SCHEMA__.checkpoints (
    name        text        PRIMARY KEY,
    position    bigint      NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- Defence in depth: the code never updates or deletes events; this makes sure nothing else
-- does either (short of disabling the trigger). Statement-level, so it also fires when no row
-- matches, and it covers TRUNCATE.
CREATE OR REPLACE FUNCTION __SCHEMA__.forbid_event_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'AL003',
        MESSAGE = format('events are append-only: %s on %I.%I is not allowed',
                         TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME);
END
$$;

CREATE OR REPLACE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON __SCHEMA__.events
    FOR EACH STATEMENT EXECUTE FUNCTION __SCHEMA__.forbid_event_changes();

-- One append, one round trip, one transaction (the caller's statement or its explicit one).
--
-- A gap-free feed without serialising the writers. An append holds a *shared* advisory lock
-- (the appending key below) from before it draws its positions until its commit is visible
-- (Postgres releases locks after marking the transaction committed); `settled_position` takes
-- the same key *exclusively* for one index lookup. So it waits until every append that had
-- begun has committed or rolled back (appends that begin meanwhile wait for the lookup), and
-- every position up to the max it reads belongs to a transaction that has ended, while later
-- appends draw higher ones. A follower reading `position > last_seen AND position <= settled`
-- sees a gap-free prefix of the log (gaps come only from rolled-back writers and never fill
-- in), and can never skip an event that commits afterwards with a lower position. Appends to
-- different streams run side by side and can share a WAL flush; before, a table lock
-- (EXCLUSIVE, the eventsourcing library's approach) made each wait for the previous one's
-- commit, fsync included. Readers of a stream or of the heads take no lock.
--
-- Appends to one stream are serialised by its head row (`streams`, locked FOR UPDATE until
-- commit); a new stream has no row yet, so its creators race to insert one and the losers
-- wait for the winner's commit, then see its version. The hash chain (shared/eventstore/
-- chain.py): the client sends each event's body digest; the link to the stream's head hash and
-- to recorded_at is made here, under the head's lock, so two writers can never chain from the
-- same head, and recorded_at follows the versions of a stream.
--
-- Tracking-only appends (no events) take no lock: they draw no positions.
-- When a recorded tracking key and a stale version both apply, AL002 (already processed) wins:
-- a redelivered message is the likelier cause, and its consumer should ack, not retry.
CREATE OR REPLACE FUNCTION __SCHEMA__.append_events(
    p_stream_id        text,
    p_expected         integer,
    p_consumer         text,
    p_key              text,
    p_types            text[],
    p_schema_versions  integer[],
    p_event_ids        text[],
    p_data             text[],
    p_metadata         text[],
    p_digests          bytea[]
) RETURNS TABLE (o_positions bigint[], o_recorded_at timestamptz, o_hashes bytea[])
LANGUAGE plpgsql AS $$
DECLARE
    v_n          integer := coalesce(cardinality(p_types), 0);
    v_actual     integer;
    v_now        timestamptz;
    v_positions  bigint[] := '{}';
    v_hash       bytea;
    v_hashes     bytea[] := '{}';
    v_time       bytea;
BEGIN
    IF v_n > 0 THEN
        PERFORM pg_advisory_xact_lock_shared(
            hashtextextended('agentlog.eventstore.appending:__SCHEMA__', 0));
        SELECT s.version, s.last_hash INTO v_actual, v_hash
        FROM __SCHEMA__.streams s WHERE s.stream_id = p_stream_id FOR UPDATE;
        IF NOT FOUND THEN
            -- Claim the new stream's head: a racing creator waits here for this commit, then
            -- finds the row and fails the version check (or the tracking check) below.
            INSERT INTO __SCHEMA__.streams AS s
                (stream_id, version, first_type, last_type, created_at, updated_at,
                 last_position, last_hash)
            VALUES (p_stream_id, 0, p_types[1], p_types[1], clock_timestamp(),
                    clock_timestamp(), 0, NULL)
            ON CONFLICT (stream_id) DO NOTHING;
            SELECT s.version, s.last_hash INTO v_actual, v_hash
            FROM __SCHEMA__.streams s WHERE s.stream_id = p_stream_id FOR UPDATE;
        END IF;
    ELSE
        SELECT s.version INTO v_actual FROM __SCHEMA__.streams s WHERE s.stream_id = p_stream_id;
    END IF;
    -- After the head's lock, so recorded_at follows the stream's versions.
    v_now := clock_timestamp();

    -- Before the version check and the inserts, so a redelivered message reports AL002 even
    -- when its events' ids or expected version collide too. Writers to the same stream are
    -- serialised by its head, so this sees theirs; the insert at the end catches others.
    IF p_consumer IS NOT NULL AND EXISTS (
        SELECT 1 FROM __SCHEMA__.tracking t WHERE t.consumer = p_consumer AND t.key = p_key
    ) THEN
        RAISE EXCEPTION USING ERRCODE = 'AL002', MESSAGE = 'already processed';
    END IF;

    v_actual := coalesce(v_actual, 0);
    IF v_actual <> p_expected THEN
        RAISE EXCEPTION USING
            ERRCODE = 'AL001', MESSAGE = 'version conflict', DETAIL = v_actual::text;
    END IF;

    IF v_n > 0 THEN
        -- A new stream, or one holding only legacy rows, chains from 32 zero bytes.
        v_hash := coalesce(v_hash, decode(repeat('00', 32), 'hex'));
        -- extract() is numeric, so the microseconds are exact.
        v_time := int8send((extract(epoch FROM v_now) * 1000000)::bigint);
        FOR i IN 1 .. v_n LOOP
            IF octet_length(p_digests[i]) IS DISTINCT FROM 32 THEN
                RAISE EXCEPTION USING ERRCODE = '22023', MESSAGE = 'each event needs a 32-byte digest';
            END IF;
            v_hash := sha256(v_hash || p_digests[i] || v_time);
            v_hashes := v_hashes || v_hash;
        END LOOP;

        -- ORDER BY so positions follow versions within the batch.
        WITH ins AS (
            INSERT INTO __SCHEMA__.events
                (stream_id, version, type, schema_version, event_id, data, metadata, recorded_at,
                 hash)
            SELECT p_stream_id, p_expected + u.i::integer, u.t, u.sv, u.eid,
                   u.d::json, u.m::json, v_now, u.h
            FROM unnest(p_types, p_schema_versions, p_event_ids, p_data, p_metadata, v_hashes)
                 WITH ORDINALITY AS u(t, sv, eid, d, m, h, i)
            ORDER BY u.i
            RETURNING events.position, events.version
        )
        SELECT array_agg(ins.position ORDER BY ins.version) INTO v_positions FROM ins;

        INSERT INTO __SCHEMA__.streams AS s
            (stream_id, version, first_type, last_type, created_at, updated_at, last_position,
             last_hash)
        VALUES (p_stream_id, p_expected + v_n, p_types[1], p_types[v_n], v_now, v_now,
                v_positions[v_n], v_hash)
        ON CONFLICT (stream_id) DO UPDATE
            SET version = excluded.version, last_type = excluded.last_type,
                updated_at = excluded.updated_at, last_position = excluded.last_position,
                last_hash = excluded.last_hash,
                -- The claimed head of a new stream (version 0) is created by this append.
                created_at = CASE WHEN s.version = 0 THEN excluded.created_at
                                  ELSE s.created_at END;
    END IF;

    -- Followers in other processes (the leading relay when another supervisor appended, a
    -- CLI waiting for an outcome) are woken at once instead of at their next poll. Sent only
    -- if this transaction commits. The payload: the schema (tests keep several stores on one
    -- server), the last position, the writer's application_name (so a process can skip its
    -- own appends), then after a newline (which application_name cannot hold: Postgres keeps
    -- it printable ASCII) the stream id's sha256 in hex, so a reader of one stream can skip
    -- the others; hashed because a payload must stay under 8,000 bytes and ids need not.
    IF v_n > 0 THEN
        PERFORM pg_notify('agentlog_appended', '__SCHEMA__:' || v_positions[v_n] || ':'
                          || coalesce(current_setting('application_name', true), '')
                          || chr(10) || encode(sha256(convert_to(p_stream_id, 'UTF8')), 'hex'));
    END IF;

    -- Last, so the key can point at the events it produced; a duplicate rolls them back.
    IF p_consumer IS NOT NULL THEN
        INSERT INTO __SCHEMA__.tracking (consumer, key, position, recorded_at)
        VALUES (p_consumer, p_key, v_positions[v_n], v_now)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'AL002', MESSAGE = 'already processed';
        END IF;
    END IF;

    RETURN QUERY SELECT v_positions, v_now, v_hashes;
END
$$;

-- The global feed's safe end: the appending key exclusively (see append_events), so no append
-- is in flight when the max is read, and every position up to it belongs to a transaction that
-- has ended; appends that begin later draw higher positions. The lock is held only for this
-- statement (an index lookup), so appends wait for the lookup, not for the page read after it.
-- Readers then read `position > last_seen AND position <= this` with any later snapshot.
-- Its first form read the whole page under the lock, holding appends for as long.
DROP FUNCTION IF EXISTS __SCHEMA__.read_all_events(bigint, integer);
CREATE OR REPLACE FUNCTION __SCHEMA__.settled_position() RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('agentlog.eventstore.appending:__SCHEMA__', 0));
    RETURN coalesce((SELECT max(e.position) FROM __SCHEMA__.events e), 0);
END
$$;
