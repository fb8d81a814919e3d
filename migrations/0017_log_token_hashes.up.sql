-- The text index of raw logs moves from tokens (a tsvector of each
-- record's distinct search tokens) to token_hashes: the same tokens hashed
-- to 20 bits (32-bit FNV-1a, masked), as log_blocks.tokens holds them for
-- a block. Vigil computes and sends them with the row. Most tokens of a
-- log line (request ids, numbers) occur once, and a GIN index over tokens
-- grows by a key per such token; over hashes it has at most 2^20 keys, a
-- posting list each, which makes it smaller and cheaper to keep up. The
-- tsvector column goes too (it held every token once more in the row): a
-- search finds the rows holding every token's hash through the index, and
-- Vigil tests the tokens of their bodies. See docs/storage.md, "Logs".

-- vigil_fnv1a folds bytes (as integers, in order) into their 32-bit
-- FNV-1a hash.
CREATE FUNCTION vigil_fnv1a_step(h bigint, b integer) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN ((h # b) * 16777619) & 4294967295;
CREATE AGGREGATE vigil_fnv1a(integer) (SFUNC = vigil_fnv1a_step, STYPE = bigint, INITCOND = '2166136261');

-- vigil_token_hashes is token_hashes for a set of tokens: what Vigil
-- sends for a body whose tokens they are, sorted and distinct.
CREATE FUNCTION vigil_token_hashes(tokens text[]) RETURNS integer[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN ARRAY(SELECT DISTINCT h FROM (
        SELECT ((SELECT vigil_fnv1a(get_byte(b, i) ORDER BY i) FROM generate_series(0, length(b) - 1) AS i) & 1048575)::integer AS h
        FROM unnest(tokens) AS l, convert_to(l, 'UTF8') AS b) AS s ORDER BY h);

ALTER TABLE logs ADD COLUMN token_hashes integer[];
-- Records stored before this migration get theirs from their tokens.
UPDATE logs SET token_hashes = vigil_token_hashes(tsvector_to_array(tokens));
ALTER TABLE logs ALTER COLUMN token_hashes SET NOT NULL;

DROP INDEX logs_tokens;
ALTER TABLE logs DROP COLUMN tokens;
CREATE INDEX logs_token_hashes ON logs USING gin (token_hashes);
