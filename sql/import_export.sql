-- anomaly_import / anomaly_export: safetensors files.  Export -> import gives
-- the same model bit for bit for every kind; hand-built files check the
-- naming convention and the arithmetic; malformed files fail with a specific
-- SQLSTATE, never a crash.
CREATE TABLE io_data AS
SELECT i, sin(i * 0.1) AS a, cos(i * 0.1) AS b,
       sin(i * 0.1) + 0.5 * cos(i * 0.1) + 0.05 * sin(i * 1.7) AS c,
       2 * sin(i * 0.037) AS d
FROM generate_series(1, 300) i;

-- little-endian helpers to build files by hand
CREATE FUNCTION io_le64(n bigint) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT decode(string_agg(substr(h, 15 - 2 * i, 2), '' ORDER BY i), 'hex')
    FROM (SELECT lpad(to_hex(n), 16, '0') AS h) x, generate_series(0, 7) i $$;
CREATE FUNCTION io_st(header text, data bytea DEFAULT '') RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT io_le64(octet_length(convert_to(header, 'UTF8'))) || convert_to(header, 'UTF8') || data $$;
CREATE FUNCTION io_f32(VARIADIC v real[]) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(string_agg(decode(substr(h, 7, 2) || substr(h, 5, 2) || substr(h, 3, 2) || substr(h, 1, 2), 'hex'),
                               ''::bytea ORDER BY o), '')
    FROM unnest(v) WITH ORDINALITY u(x, o), LATERAL (SELECT encode(float4send(x), 'hex') AS h) y $$;
-- the SQLSTATE and message of an import, or ok
CREATE FUNCTION io_try(f bytea, kind text DEFAULT 'autoencoder', opts jsonb DEFAULT '{}') RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM anomaly_import('io_bad', kind, f, opts);
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- every kind: export, import, and compare everything
SELECT count(*) > 0 AS trained
FROM anomaly_kinds() k,
     LATERAL anomaly_train('io_m_' || k.kind, 'SELECT a, b, c, d FROM io_data', k.kind,
                           CASE WHEN k.kind IN ('autoencoder', 'vae', 'gan') THEN '{"epochs": 3}' ELSE '{}' END::jsonb) t;
SELECT count(*) > 0 AS imported
FROM anomaly_kinds() k,
     LATERAL anomaly_import('io_r_' || k.kind, NULL, anomaly_export('io_m_' || k.kind)) s;
SELECT string_agg(k.kind, ', ') FILTER (WHERE NOT same_row) AS rows_differ,
       string_agg(k.kind, ', ') FILTER (WHERE NOT same_tensors) AS tensors_differ,
       string_agg(k.kind, ', ') FILTER (WHERE NOT same_scores) AS scores_differ,
       string_agg(k.kind, ', ') FILTER (WHERE NOT same_explain) AS explanations_differ,
       string_agg(k.kind, ', ') FILTER (WHERE NOT imported) AS not_marked_imported
FROM anomaly_kinds() k,
LATERAL (SELECT
    (SELECT row(m.kind, m.n_features, m.feature_names, m.options, m.threshold, m.score_quantiles)
     FROM anomaly_models m WHERE m.name = 'io_m_' || k.kind) IS NOT DISTINCT FROM
    (SELECT row(m.kind, m.n_features, m.feature_names, m.options, m.threshold, m.score_quantiles)
     FROM anomaly_models m WHERE m.name = 'io_r_' || k.kind) AS same_row,
    (SELECT array_agg(row(w.tensor, w.shape, w.data) ORDER BY w.tensor) FROM anomaly_weights w WHERE w.model = 'io_m_' || k.kind) =
    (SELECT array_agg(row(w.tensor, w.shape, w.data) ORDER BY w.tensor) FROM anomaly_weights w WHERE w.model = 'io_r_' || k.kind) AS same_tensors,
    (SELECT bool_and(anomaly_score('io_m_' || k.kind, ARRAY[a, b, c, d]) = anomaly_score('io_r_' || k.kind, ARRAY[a, b, c, d]))
     FROM io_data) AS same_scores,
    (SELECT bool_and(anomaly_explain('io_m_' || k.kind, ARRAY[a, b, c, d]) = anomaly_explain('io_r_' || k.kind, ARRAY[a, b, c, d]))
     FROM io_data WHERE i % 10 = 0) AS same_explain,
    (SELECT metrics ? 'imported' FROM anomaly_models WHERE name = 'io_r_' || k.kind) AS imported
) c;

-- the exported file: 8-byte length, a header padded to 8 bytes, the tensors
SELECT get_byte(f, 8) = ascii('{') AS header_first,
       (8 + get_byte(f, 0) + 256 * get_byte(f, 1) + 65536 * get_byte(f, 2)) % 8 = 0 AS padded,
       position(convert_to('"encoder.0.weight":{"dtype":"F32","shape":[8,4]', 'UTF8') IN f) > 0 AS torch_names,
       position(convert_to('"anomaly.kind":"autoencoder"', 'UTF8') IN f) > 0 AS kind_in_metadata
FROM (SELECT anomaly_export('io_m_autoencoder') AS f) x;

-- the file's kind is the default; another kind is refused
SELECT io_try(anomaly_export('io_m_vae'), 'autoencoder');
SELECT io_try(anomaly_export('io_m_vae'), NULL);

-- a tiny autoencoder by hand: h = tanh(0.5 x1 - 0.5 x2 + 0.125), reconstruction (h, -h)
CREATE TABLE io_files AS SELECT
    '{"encoder.0.weight":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},'
    '"encoder.0.bias":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},'
    '"decoder.0.weight":{"dtype":"F32","shape":[2,1],"data_offsets":[12,20]},'
    '"decoder.0.bias":{"dtype":"F32","shape":[2],"data_offsets":[20,28]}}'::text AS header,
    io_f32(0.5, -0.5, 0.125, 1, -1, 0, 0) AS data;
SELECT anomaly_import('io_hand', 'autoencoder', io_st(header, data)) - 'options' AS summary FROM io_files;
SELECT abs(anomaly_score('io_hand', ARRAY[1, -1]::float8[]) - 2 * (1 - tanh(1.125)) ^ 2) < 1e-6 AS score_as_computed,
       anomaly_is_anomaly('io_hand', ARRAY[100, -100]::float8[]) AS uncalibrated_flags_nothing,
       (SELECT threshold FROM anomaly_models WHERE name = 'io_hand') AS threshold,
       (SELECT options FROM anomaly_models WHERE name = 'io_hand') AS options
FROM io_files;

-- the scaler, activations and features from options; calibration on a query
SELECT anomaly_import('io_hand2', 'autoencoder', io_st(header, data),
                      '{"mean": [1, 2], "scale": [2, 4], "activations": {"encoder": ["relu"], "decoder": ["identity"]},
                        "feature_names": ["x", "y"], "query": "SELECT a, b FROM io_data", "contamination": 0.1}')
       - 'options' - 'threshold' AS summary FROM io_files;
SELECT abs(anomaly_score('io_hand2', ARRAY[3, 2]::float8[]) - ((1 - 0.625) ^ 2 + 0.625 ^ 2)) < 1e-6 AS relu_and_scaler,
       feature_names,
       threshold = score_quantiles[901] AS threshold_at_contamination,
       (SELECT bool_and(q[i] <= q[i + 1]) FROM generate_series(1, 1000) i) AS quantiles_sorted,
       metrics->'imported'->>'calibration_rows' AS calibration_rows
FROM anomaly_models, LATERAL (SELECT score_quantiles AS q) q WHERE name = 'io_hand2';
SELECT anomaly_import('io_hand3', 'autoencoder', io_st(header, data), '{"threshold": 0.5}')->>'threshold' AS threshold
FROM io_files;

-- the same weights as F64, F16 and BF16 (exact in each) score the same
CREATE FUNCTION io_header(dtype text, size int) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT format('{"encoder.0.weight":{"dtype":"%1$s","shape":[1,2],"data_offsets":[0,%2$s]},'
                  '"encoder.0.bias":{"dtype":"%1$s","shape":[1],"data_offsets":[%2$s,%3$s]},'
                  '"decoder.0.weight":{"dtype":"%1$s","shape":[2,1],"data_offsets":[%3$s,%4$s]},'
                  '"decoder.0.bias":{"dtype":"%1$s","shape":[2],"data_offsets":[%4$s,%5$s]}}',
                  dtype, 2 * size, 3 * size, 5 * size, 7 * size) $$;
SELECT d.dtype,
       anomaly_import('io_hand_' || lower(d.dtype), 'autoencoder', io_st(io_header(d.dtype, d.size), d.data))->>'tensors' AS tensors,
       anomaly_score('io_hand_' || lower(d.dtype), ARRAY[1, -1]::float8[]) = anomaly_score('io_hand', ARRAY[1, -1]::float8[]) AS same_score
FROM (VALUES ('F64', 8, decode('000000000000e03f' || '000000000000e0bf' || '000000000000c03f' || '000000000000f03f'
                                || '000000000000f0bf' || '0000000000000000' || '0000000000000000', 'hex')),
             ('F16', 2, decode('0038' || '00b8' || '0030' || '003c' || '00bc' || '0000' || '0000', 'hex')),
             ('BF16', 2, decode('003f' || '00bf' || '003e' || '803f' || '80bf' || '0000' || '0000', 'hex'))) d(dtype, size, data);

-- other module names through the option names; extra tensors with strict off
SELECT anomaly_import('io_names', 'autoencoder',
           io_st(replace(replace(header, 'encoder.', 'net.enc.'), 'decoder.', 'net.dec.'), data),
           '{"names": {"net.enc": "encoder", "net.dec": "decoder"}}')->>'tensors' AS tensors FROM io_files;
SELECT io_try(io_st(replace(header, '}}', '},"head.weight":{"dtype":"F32","shape":[1],"data_offsets":[28,32]}}'),
                    data || io_f32(7)), 'autoencoder', '{"strict": false}') FROM io_files;

-- a VAE by hand with heads mu and logvar (L = 1): score = (x - dec(mu))^2 + beta KL
SELECT anomaly_import('io_vae', 'vae', io_st(
    '{"mu.weight":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},"mu.bias":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},'
    '"logvar.weight":{"dtype":"F32","shape":[1,1],"data_offsets":[8,12]},"logvar.bias":{"dtype":"F32","shape":[1],"data_offsets":[12,16]},'
    '"decoder.0.weight":{"dtype":"F32","shape":[1,1],"data_offsets":[16,20]},"decoder.0.bias":{"dtype":"F32","shape":[1],"data_offsets":[20,24]}}',
    io_f32(0.5, 0, 0, -1, 1, 0)), '{"beta": 2}')->'options' AS options;
-- x = 2: mu = 1, logvar = -1, reconstruction 1: 1 + 2 * 0.5 * (1 + e^-1 - 1 + 1)
SELECT abs(anomaly_score('io_vae', ARRAY[2]::float8[]) - (1 + (1 + exp(-1.0)))) < 1e-6 AS vae_score;

-- malformed files: each an error with its SQLSTATE
SELECT io_try('\x0102');
SELECT io_try(io_le64(1000) || convert_to('{}', 'UTF8'));
SELECT io_try(io_le64(-1) || convert_to('{}', 'UTF8'));
SELECT io_try(io_st('{"a":'));
SELECT io_try(io_st('[1, 2]'));
SELECT io_try(io_st('{"a": [[[[1]]]]}'));
SELECT io_try(io_le64(4) || '\x7b22ff7d'::bytea);
SELECT io_try(io_le64(4) || '\x7b00007d'::bytea);
SELECT io_try(io_st('{"a": 1}'));
SELECT io_try(io_st('{"a": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}', io_f32(1)));
SELECT io_try(io_st('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": 1}}', io_f32(1)));
SELECT io_try(io_st('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 8]}}', io_f32(1)));
SELECT io_try(io_st('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}', io_f32(1)));
SELECT io_try(io_st('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', io_f32(1)));
SELECT io_try(io_st('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', io_f32(1)));
SELECT io_try(io_st('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', io_f32(1, 2)));
SELECT io_try(io_st('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', io_f32(1, 2)));
SELECT io_try(io_st('{"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 0]}}'));
SELECT io_try(io_st('{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}', io_f32(1)));
SELECT io_try(io_st('{"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}', io_f32(1)));
SELECT io_try(io_st('{"a": {"dtype": "F32", "shape": [99999999999999999999], "data_offsets": [0, 4]}}', io_f32(1)));
SELECT io_try(io_st('{"a": {"dtype": "F32", "shape": [1,1,1,1,1,1,1,1,1], "data_offsets": [0, 4]}}', io_f32(1)));
SELECT io_try(io_st('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', io_f32(1, 2)));
SELECT io_try(io_st('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "__metadata__": {"k": 1}}', io_f32(1)));
SELECT io_try(io_st('{"a": {"dtype": "F32", "data_offsets": [0, 4]}}', io_f32(1)));
-- a truncated and an overwritten export
SELECT io_try(substring(f FROM 1 FOR octet_length(f) - 3), NULL) FROM (SELECT anomaly_export('io_hand') AS f) x;
SELECT io_try(overlay(f PLACING '\xffffffff' FROM 1 FOR 4), NULL) FROM (SELECT anomaly_export('io_hand') AS f) x;

-- well-formed files whose tensors cannot be used
SELECT io_try(io_st(header, io_f32(0.5, 'NaN', 0.125, 1, -1, 0, 0))) FROM io_files;
SELECT io_try(io_st(header, io_f32(0.5, 'Infinity', 0.125, 1, -1, 0, 0))) FROM io_files;
SELECT io_try(io_st(io_header('F64', 8), decode(repeat('000000000000f07f', 7), 'hex')));
SELECT io_try(io_st(io_header('F64', 8), decode('000000000000f87f' || repeat('0000000000000000', 6), 'hex')));
SELECT io_try(io_st(io_header('F64', 8), decode('3c9af33d2c2ae47e' || repeat('0000000000000000', 6), 'hex')));
SELECT io_try(io_st(io_header('F16', 2), decode('007c' || repeat('0000', 6), 'hex')));
SELECT io_try(io_st(io_header('I32', 4), io_f32(0.5, -0.5, 0.125, 1, -1, 0, 0)));
-- wrong architectures name the tensor (io_file: F32 tensors of the given shapes)
CREATE FUNCTION io_file(VARIADIC spec text[]) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    h text := '';
    off bigint := 0;
    n bigint;
    x bigint;
    data bytea := '';
BEGIN
    FOR i IN 1 .. array_length(spec, 1) BY 2 LOOP
        n := 1;
        FOR x IN SELECT jsonb_array_elements_text(spec[i + 1]::jsonb)::bigint LOOP
            n := n * x;
        END LOOP;
        h := h || CASE WHEN i > 1 THEN ',' ELSE '' END
             || format('"%s":{"dtype":"F32","shape":%s,"data_offsets":[%s,%s]}', spec[i], spec[i + 1], off, off + 4 * n);
        off := off + 4 * n;
        data := data || decode(repeat('0000803e', n::int), 'hex');
    END LOOP;
    RETURN io_st('{' || h || '}', data);
END $$;
SELECT io_try(io_file('encoder.0.weight', '[1,2]', 'encoder.0.bias', '[1]', 'decoder.0.weight', '[2,3]', 'decoder.0.bias', '[2]'));
SELECT io_try(io_file('encoder.0.weight', '[1,2]', 'encoder.0.bias', '[1]', 'decoder.0.weight', '[3,1]', 'decoder.0.bias', '[3]'));
SELECT io_try(io_file('encoder.0.weight', '[1,2]', 'encoder.0.bias', '[2]', 'decoder.0.weight', '[2,1]'));
SELECT io_try(io_file('encoder.0.weight', '[1,2]', 'encoder.0.bias', '[1,1]', 'decoder.0.weight', '[2,1]'));
SELECT io_try(io_file('encoder.0.weight', '[2]', 'decoder.0.weight', '[2,1]'));
SELECT io_try(io_file('encoder.0.weight', '[0,2]', 'decoder.0.weight', '[2,0]'));
SELECT io_try(io_file('encoder.0.weight', '[5000,2]', 'decoder.0.weight', '[2,5000]'));
SELECT io_try(io_file('encoder.0.weight', '[1,2]', 'decoder.0.weight', '[2,1]', 'decoder.1.bias', '[2]'));
SELECT io_try(io_file('encoder.0.weight', '[1,2]', 'decoder.0.weight', '[2,1]', 'decoder.0.b', '[2]'));
SELECT io_try(io_file('encoder.0.weight', '[1,2]', 'decoder.0.weight', '[2,1]', 'head.weight', '[1]'));
SELECT io_try(io_file('e.0.weight', '[1,2]', 'd.0.weight', '[2,1]'));
SELECT io_try(io_file('encoder.0.weight', '[1,2]', 'decoder.0.weight', '[2,1]', 'scaler.mean', '[3]'));
SELECT io_try(io_file('encoder.0.weight', '[1,2]', 'decoder.0.weight', '[2,1]', 'scaler.mean', '[2]', 'scaler.center', '[2]'));
SELECT io_try(io_file('encoder.0.weight', '[1,2]', 'decoder.0.weight', '[2,1]'), 'vae');
SELECT io_try(io_file('encoder.0.weight', '[2,2]', 'mu.weight', '[1,2]', 'decoder.0.weight', '[2,1]'), 'vae');
SELECT io_try(io_file('encoder.0.weight', '[2,2]', 'mu.weight', '[1,2]', 'logvar.weight', '[2,2]', 'decoder.0.weight', '[2,1]'), 'vae');
SELECT io_try(io_file('encoder.0.weight', '[3,2]', 'decoder.0.weight', '[2,1]'), 'vae');
SELECT io_try(io_file('encoder.0.weight', '[1,2]', 'decoder.0.weight', '[2,1]'), 'gan');
SELECT io_try(io_file('encoder.0.weight', '[1,2]', 'decoder.0.weight', '[2,1]', 'features.0.weight', '[3,2]'), 'gan');
SELECT io_try(io_file('encoder.0.weight', '[1,2]', 'decoder.0.weight', '[2,1]'), 'zscore');
SELECT io_try(io_file('zscore.loc', '[3]', 'zscore.scale', '[2]'), 'zscore', '{"feature_names": ["x", "y"]}');
-- (the detail names the tensor)
SELECT anomaly_import('io_bad', 'zscore', io_file('zscore.loc', '[3]', 'zscore.scale', '[2]'), '{"feature_names": ["x", "y"]}');
SELECT io_try(io_file('zscore.loc', '[2]', 'zscore.scale', '[2]'), 'zscore');
SELECT io_try(io_file('zscore.loc', '[2]', 'zscore.scale', '[2]'), 'zscore', '{"feature_names": ["x", "y"]}');
-- options
SELECT io_try(io_st(header, data), 'autoencoder', '{"activations": {"encoder": ["tanh", "relu"]}}') FROM io_files;
SELECT io_try(io_st(header, data), 'autoencoder', '{"activations": {"encoder": ["swish"]}}') FROM io_files;
SELECT io_try(io_st(header, data), 'autoencoder', '{"activations": {"encoders": ["relu"]}}') FROM io_files;
SELECT io_try(io_st(header, data), 'autoencoder', '{"mean": [1, 2, 3]}') FROM io_files;
SELECT io_try(io_st(header, data), 'autoencoder', '{"scale": [1, 0]}') FROM io_files;
SELECT io_try(io_st(header, data), 'autoencoder', '{"names": {"encoder": "decoder"}}') FROM io_files;
SELECT io_try(io_st(header, data), 'autoencoder', '{"epochs": 3}') FROM io_files;
SELECT io_try(io_st(header, data), 'autoencoder', '{"query": "SELECT a, b, c FROM io_data"}') FROM io_files;
SELECT io_try(io_st(header, data), 'autoencoder', '{"feature_names": ["x"]}') FROM io_files;
SELECT io_try(io_st(header, data), NULL) FROM io_files;
SELECT anomaly_import('', 'autoencoder', '\x00');
SELECT anomaly_import('io_null', 'autoencoder', NULL);
SELECT anomaly_export('io_no_such_model');

-- importing needs the privileges training needs
CREATE ROLE regress_anomaly_io_reader;
GRANT SELECT ON anomaly_models, anomaly_weights, io_files TO regress_anomaly_io_reader;
SET ROLE regress_anomaly_io_reader;
SELECT octet_length(anomaly_export('io_hand')) > 0 AS reader_can_export;
SELECT io_try(io_st(header, data)) FROM io_files;
RESET ROLE;
DROP OWNED BY regress_anomaly_io_reader;
DROP ROLE regress_anomaly_io_reader;

SELECT count(*) AS dropped FROM anomaly_models m, LATERAL anomaly_drop(m.name) WHERE m.name LIKE 'io\_%';
