--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: auth_orgs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.auth_orgs (
    id text NOT NULL,
    name text NOT NULL,
    created_at bigint NOT NULL
);


--
-- Name: auth_tokens; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.auth_tokens (
    hash text NOT NULL,
    user_id text NOT NULL,
    name text NOT NULL,
    created_at bigint NOT NULL
);


--
-- Name: auth_users; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.auth_users (
    id text NOT NULL,
    org_id text NOT NULL,
    login text NOT NULL,
    admin boolean NOT NULL,
    created_at bigint NOT NULL
);


--
-- Name: events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.events (
    "position" bigint NOT NULL,
    stream_id text NOT NULL,
    stream_version bigint NOT NULL,
    event_id text NOT NULL,
    type text NOT NULL,
    payload bytea NOT NULL,
    metadata jsonb,
    recorded_at timestamp with time zone DEFAULT now() NOT NULL,
    transaction_id xid8 DEFAULT pg_current_xact_id() NOT NULL,
    CONSTRAINT events_stream_version_positive CHECK ((stream_version > 0))
);


--
-- Name: events_position_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.events_position_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: events_position_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.events_position_seq OWNED BY public.events."position";


--
-- Name: log_chunks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.log_chunks (
    run_id text NOT NULL,
    attempt integer NOT NULL,
    seq bigint NOT NULL,
    org_id text NOT NULL,
    project_id text NOT NULL,
    step integer NOT NULL,
    stream text NOT NULL,
    at bigint NOT NULL,
    data bytea NOT NULL
);


--
-- Name: log_runs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.log_runs (
    run_id text NOT NULL,
    org_id text NOT NULL,
    attempt integer NOT NULL,
    last_seq bigint NOT NULL
);


--
-- Name: project_secrets; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.project_secrets (
    project_id text NOT NULL,
    name text NOT NULL,
    key_id text NOT NULL,
    sealed bytea NOT NULL,
    updated_at bigint NOT NULL
);


--
-- Name: projects; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.projects (
    id text NOT NULL,
    org_id text NOT NULL,
    name text NOT NULL,
    provider text NOT NULL,
    repository text NOT NULL,
    events text NOT NULL,
    tier text NOT NULL,
    webhook_secret text NOT NULL,
    created_at bigint NOT NULL,
    network text DEFAULT 'default'::text NOT NULL
);


--
-- Name: sched_jobs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.sched_jobs (
    run_id text NOT NULL,
    tier text NOT NULL,
    state text NOT NULL,
    created_at bigint NOT NULL,
    runner_id text NOT NULL,
    lease_id text NOT NULL,
    lease_expires bigint NOT NULL,
    attempt integer DEFAULT 1 NOT NULL,
    cancel_requested boolean DEFAULT false NOT NULL
);


--
-- Name: sched_positions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.sched_positions (
    name text NOT NULL,
    "position" bigint NOT NULL
);


--
-- Name: sched_run_numbers; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.sched_run_numbers (
    project_id text NOT NULL,
    last bigint NOT NULL
);


--
-- Name: sched_runners; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.sched_runners (
    runner_id text NOT NULL,
    tiers text NOT NULL,
    last_seen bigint NOT NULL
);


--
-- Name: sched_runs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.sched_runs (
    run_id text NOT NULL,
    org_id text NOT NULL,
    project_id text NOT NULL,
    number bigint NOT NULL,
    status text NOT NULL,
    reason text NOT NULL,
    event text NOT NULL,
    ref text NOT NULL,
    branch text NOT NULL,
    sha text NOT NULL,
    actor text NOT NULL,
    tier text NOT NULL,
    created_at bigint NOT NULL,
    started_at bigint NOT NULL,
    finished_at bigint NOT NULL,
    version bigint NOT NULL
);


--
-- Name: events position; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events ALTER COLUMN "position" SET DEFAULT nextval('public.events_position_seq'::regclass);


--
-- Data for Name: auth_orgs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.auth_orgs VALUES ('01m8xe6jenz6vf3fmvtcv0m7x2', 'default', 1796284303828557596);


--
-- Data for Name: auth_tokens; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.auth_tokens VALUES ('0d1dfd3afdd8814be56e68bf8c1ec1377244ac78f643831e44678ac79cf4c05a', '01m8xe6jep2mqm1w9pfewzgmeb', 'admin-bootstrap', 1796284303828557596);


--
-- Data for Name: auth_users; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.auth_users VALUES ('01m8xe6jep2mqm1w9pfewzgmeb', '01m8xe6jenz6vf3fmvtcv0m7x2', 'admin', true, 1796284303828557596);


--
-- Data for Name: events; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.events VALUES (1, 'run-01m8xe71jspr29n89pgs39hafq', 1, '01m8xe71jvqhb026kb1dbwn89e', 'simpleci.events.v1.RunQueued', '\x0a1a30316d38786537316a73707232396e3839706773333968616671121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a707320012a087374616e6461726432056c6f63616c3a152f746d702f6d69672f7372762f64656d6f2d7372635228653039386461356463326466653762393233393031393937313365376665623463363664643161395a066d616e75616c620561646d696e6a0547726565746a054275696c646a124465706c6f79202874616773206f6e6c79296a065265706f72747282047b0a2020227374657073223a205b0a202020207b0a202020202020226e616d65223a20224772656574222c0a2020202020202272756e223a205b226563686f205c2248656c6c6f2066726f6d2053696d706c654349206f6e202428756e616d65202d73295c22222c20226563686f205c226576656e743d2443495f4556454e545c22203e2632225d0a202020207d2c0a202020207b0a202020202020226e616d65223a20224275696c64222c0a20202020202022636f6e646974696f6e223a2022636f6e746578742e6576656e74203d3d20277075736827207c7c20636f6e746578742e6576656e74203d3d20276d616e75616c27222c0a2020202020202272756e223a205b227368202e2f6275696c642e7368225d0a202020207d2c0a202020207b0a202020202020226e616d65223a20224465706c6f79202874616773206f6e6c7929222c0a20202020202022636f6e646974696f6e223a2022636f6e746578742e6576656e74203d3d202774616727222c0a2020202020202272756e223a20226563686f206465706c6f79696e67220a202020207d2c0a202020207b0a202020202020226e616d65223a20225265706f7274222c0a2020202020202272756e223a20226563686f20277374646f7574206c696e65273b206563686f2027737464657272206c696e6527203e26323b206c73220a202020207d0a20205d0a7d0a7a172e73696d706c6563692f706970656c696e652e6a736f6e82010308960192010c089fbfc4d806108de2bb9a01a2010764656661756c74', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71jspr29n89pgs39hafq", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.339855+00', '760');
INSERT INTO public.events VALUES (2, 'run-01m8xe71jspr29n89pgs39hafq', 2, '01m8xe71kvm9k82g7dkj7nnxhn', 'simpleci.events.v1.RunStarted', '\x0a1a30316d38786537316a73707232396e3839706773333968616671121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a70732202766d2a1a30316d38786537316b70343664706a66786e76713261616d6b70320c089fbfc4d80610b8bea5a901', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71jspr29n89pgs39hafq", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.355137+00', '763');
INSERT INTO public.events VALUES (3, 'run-01m8xe71mfnj208w75arqrc4by', 1, '01m8xe71mn4kgp253ag1qnkzt0', 'simpleci.events.v1.RunQueued', '\x0a1a30316d38786537316d666e6a3230387737356172717263346279121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a707320022a087374616e6461726432056c6f63616c3a152f746d702f6d69672f7372762f64656d6f2d7372635228653039386461356463326466653762393233393031393937313365376665623463363664643161395a066d616e75616c620561646d696e6a0547726565746a054275696c646a124465706c6f79202874616773206f6e6c79296a065265706f72747282047b0a2020227374657073223a205b0a202020207b0a202020202020226e616d65223a20224772656574222c0a2020202020202272756e223a205b226563686f205c2248656c6c6f2066726f6d2053696d706c654349206f6e202428756e616d65202d73295c22222c20226563686f205c226576656e743d2443495f4556454e545c22203e2632225d0a202020207d2c0a202020207b0a202020202020226e616d65223a20224275696c64222c0a20202020202022636f6e646974696f6e223a2022636f6e746578742e6576656e74203d3d20277075736827207c7c20636f6e746578742e6576656e74203d3d20276d616e75616c27222c0a2020202020202272756e223a205b227368202e2f6275696c642e7368225d0a202020207d2c0a202020207b0a202020202020226e616d65223a20224465706c6f79202874616773206f6e6c7929222c0a20202020202022636f6e646974696f6e223a2022636f6e746578742e6576656e74203d3d202774616727222c0a2020202020202272756e223a20226563686f206465706c6f79696e67220a202020207d2c0a202020207b0a202020202020226e616d65223a20225265706f7274222c0a2020202020202272756e223a20226563686f20277374646f7574206c696e65273b206563686f2027737464657272206c696e6527203e26323b206c73220a202020207d0a20205d0a7d0a7a172e73696d706c6563692f706970656c696e652e6a736f6e82010308960192010c089fbfc4d80610989085b601a2010764656661756c74', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71mfnj208w75arqrc4by", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.397532+00', '767');
INSERT INTO public.events VALUES (4, 'run-01m8xe71jspr29n89pgs39hafq', 3, '01m8xe71r8d1mhxrenr84fv2n6', 'simpleci.events.v1.RunIsolation', '\x0a1a30316d38786537316a73707232396e3839706773333968616671121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a707322cb0169736f6c6174696f6e3a206367726f75703d76312b7632206d656d6f72792c706964732c6370752c667265657a65723b206e616d657370616365733d757365722c6d6f756e742c7069642c6970632c7574732c6367726f75703b20757365723d7569642036343031323b2066733d627562626c65777261703b206e6f5f6e65775f70726976733b20636170733d6e6f6e653b206b696c6c3d6367726f75702e6b696c6c2c6367726f75702c7569642c706964206e616d6573706163652c70726f636573732067726f7570732801', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71jspr29n89pgs39hafq", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.4981+00', '772');
INSERT INTO public.events VALUES (5, 'run-01m8xe71jspr29n89pgs39hafq', 4, '01m8xe71rcnfk4m52qjvkt65x8', 'simpleci.events.v1.StepStarted', '\x0a1a30316d38786537316a73707232396e3839706773333968616671121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a70732a054772656574320c089fbfc4d8061086a1ebee01', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71jspr29n89pgs39hafq", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.503023+00', '774');
INSERT INTO public.events VALUES (6, 'run-01m8xe71jspr29n89pgs39hafq', 5, '01m8xe71sd2t8cbdqfhs61fttp', 'simpleci.events.v1.StepFinished', '\x0a1a30316d38786537316a73707232396e3839706773333968616671121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a70732a05477265657432097375636365656465644a0c089fbfc4d8061086a1ebee01520c089fbfc4d806109982bffe01', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71jspr29n89pgs39hafq", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.535054+00', '779');
INSERT INTO public.events VALUES (7, 'run-01m8xe71jspr29n89pgs39hafq', 6, '01m8xe71sg7nncd3e61rrfkxks', 'simpleci.events.v1.StepStarted', '\x0a1a30316d38786537316a73707232396e3839706773333968616671121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a707320012a054275696c64320c089fbfc4d80610b1dbe7ff01', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71jspr29n89pgs39hafq", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.539313+00', '781');
INSERT INTO public.events VALUES (8, 'run-01m8xe71jspr29n89pgs39hafq', 7, '01m8xe71t3d7nk98ygcc9tmp6w', 'simpleci.events.v1.StepFinished', '\x0a1a30316d38786537316a73707232396e3839706773333968616671121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a707320012a054275696c6432097375636365656465644a0c089fbfc4d80610b1dbe7ff01520c089fbfc4d806108dfce38802', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71jspr29n89pgs39hafq", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.55658+00', '787');
INSERT INTO public.events VALUES (9, 'run-01m8xe71jspr29n89pgs39hafq', 8, '01m8xe71t5zha392e3wwfjpmeg', 'simpleci.events.v1.StepSkipped', '\x0a1a30316d38786537316a73707232396e3839706773333968616671121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a707320022a124465706c6f79202874616773206f6e6c7929322a636f6e646974696f6e2069732066616c73653a20636f6e746578742e6576656e74203d3d2027746167273a0c089fbfc4d80610e0d1fd8902', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71jspr29n89pgs39hafq", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.565934+00', '789');
INSERT INTO public.events VALUES (10, 'run-01m8xe71jspr29n89pgs39hafq', 9, '01m8xe71tgaq66achhzavw98ge', 'simpleci.events.v1.StepStarted', '\x0a1a30316d38786537316a73707232396e3839706773333968616671121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a707320032a065265706f7274320c089fbfc4d806109f82878f02', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71jspr29n89pgs39hafq", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.579414+00', '794');
INSERT INTO public.events VALUES (11, 'run-01m8xe71jspr29n89pgs39hafq', 10, '01m8xe71vd8p0s7vfh1g63g9ke', 'simpleci.events.v1.StepFinished', '\x0a1a30316d38786537316a73707232396e3839706773333968616671121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a707320032a065265706f727432097375636365656465644a0c089fbfc4d806109f82878f02520c089fbfc4d806109ed9dd9c02', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71jspr29n89pgs39hafq", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.598245+00', '799');
INSERT INTO public.events VALUES (12, 'run-01m8xe71jspr29n89pgs39hafq', 11, '01m8xe71wbj8q3fezyrhgfcmrr', 'simpleci.events.v1.RunFinished', '\x0a1a30316d38786537316a73707232396e3839706773333968616671121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a70732209737563636565646564320c089fbfc4d80610f6a883ac0238094001', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71jspr29n89pgs39hafq", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.630078+00', '805');
INSERT INTO public.events VALUES (13, 'run-01m8xe71mfnj208w75arqrc4by', 2, '01m8xe71wqmgb656d46bzq43rm', 'simpleci.events.v1.RunStarted', '\x0a1a30316d38786537316d666e6a3230387737356172717263346279121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a70732202766d2a1a30316d3878653731776e7279357374747830376b626d7a326e65320c089fbfc4d80610dac0edb002', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71mfnj208w75arqrc4by", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.639396+00', '810');
INSERT INTO public.events VALUES (14, 'run-01m8xe71mfnj208w75arqrc4by', 3, '01m8xe71zxsdx7rfc17xk6zfwb', 'simpleci.events.v1.RunIsolation', '\x0a1a30316d38786537316d666e6a3230387737356172717263346279121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a707322cb0169736f6c6174696f6e3a206367726f75703d76312b7632206d656d6f72792c706964732c6370752c667265657a65723b206e616d657370616365733d757365722c6d6f756e742c7069642c6970632c7574732c6367726f75703b20757365723d7569642036343031333b2066733d627562626c65777261703b206e6f5f6e65775f70726976733b20636170733d6e6f6e653b206b696c6c3d6367726f75702e6b696c6c2c6367726f75702c7569642c706964206e616d6573706163652c70726f636573732067726f7570732801', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71mfnj208w75arqrc4by", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.742493+00', '816');
INSERT INTO public.events VALUES (15, 'run-01m8xe71mfnj208w75arqrc4by', 4, '01m8xe71zzcjtxmqv03nkkq3g7', 'simpleci.events.v1.StepStarted', '\x0a1a30316d38786537316d666e6a3230387737356172717263346279121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a70732a054772656574320c089fbfc4d80610d8e9c7e202', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71mfnj208w75arqrc4by", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.74498+00', '817');
INSERT INTO public.events VALUES (16, 'run-01m8xe71mfnj208w75arqrc4by', 5, '01m8xe720jzx4caby8dzerbghp', 'simpleci.events.v1.StepFinished', '\x0a1a30316d38786537316d666e6a3230387737356172717263346279121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a70732a05477265657432097375636365656465644a0c089fbfc4d80610d8e9c7e202520c089fbfc4d80610a2a9cbeb02', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71mfnj208w75arqrc4by", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.763685+00', '824');
INSERT INTO public.events VALUES (17, 'run-01m8xe71mfnj208w75arqrc4by', 6, '01m8xe720svzes6r2krhreg4kt', 'simpleci.events.v1.StepStarted', '\x0a1a30316d38786537316d666e6a3230387737356172717263346279121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a707320012a054275696c64320c089fbfc4d806108d94e8ee02', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71mfnj208w75arqrc4by", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.770262+00', '826');
INSERT INTO public.events VALUES (19, 'run-01m8xe71mfnj208w75arqrc4by', 8, '01m8xe7215xatj8gaepdjvfjyp', 'simpleci.events.v1.StepSkipped', '\x0a1a30316d38786537316d666e6a3230387737356172717263346279121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a707320022a124465706c6f79202874616773206f6e6c7929322a636f6e646974696f6e2069732066616c73653a20636f6e746578742e6576656e74203d3d2027746167273a0c089fbfc4d80610fcd8dbf402', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71mfnj208w75arqrc4by", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.78239+00', '831');
INSERT INTO public.events VALUES (20, 'run-01m8xe71mfnj208w75arqrc4by', 9, '01m8xe721760cx8qa82111x9hv', 'simpleci.events.v1.StepStarted', '\x0a1a30316d38786537316d666e6a3230387737356172717263346279121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a707320032a065265706f7274320c089fbfc4d80610d3f5c2f502', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71mfnj208w75arqrc4by", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.784147+00', '833');
INSERT INTO public.events VALUES (22, 'run-01m8xe71mfnj208w75arqrc4by', 11, '01m8xe722mz6spqkfs0a36h93v', 'simpleci.events.v1.RunFinished', '\x0a1a30316d38786537316d666e6a3230387737356172717263346279121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a70732209737563636565646564320c089fbfc4d80610bd94d68b0338094001', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71mfnj208w75arqrc4by", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.829874+00', '847');
INSERT INTO public.events VALUES (18, 'run-01m8xe71mfnj208w75arqrc4by', 7, '01m8xe7213q16yt4x7gvhwe4ky', 'simpleci.events.v1.StepFinished', '\x0a1a30316d38786537316d666e6a3230387737356172717263346279121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a707320012a054275696c6432097375636365656465644a0c089fbfc4d806108d94e8ee02520c089fbfc4d80610b3f5f1f302', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71mfnj208w75arqrc4by", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.780911+00', '830');
INSERT INTO public.events VALUES (21, 'run-01m8xe71mfnj208w75arqrc4by', 10, '01m8xe721mh2mh04hh1mvcxqfd', 'simpleci.events.v1.StepFinished', '\x0a1a30316d38786537316d666e6a3230387737356172717263346279121a30316d387865366a656e7a36766633666d76746376306d3778321a1a30316d387865367a677a613035793238666871307034617a707320032a065265706f727432097375636365656465644a0c089fbfc4d80610d3f5c2f502520c089fbfc4d80610a2e1d7fb02', '{"org_id": "01m8xe6jenz6vf3fmvtcv0m7x2", "run_id": "01m8xe71mfnj208w75arqrc4by", "project_id": "01m8xe6zgza05y28fhq0p4azps"}', '2026-12-03 07:51:59.797185+00', '839');


--
-- Data for Name: log_chunks; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.log_chunks VALUES ('01m8xe71jspr29n89pgs39hafq', 1, 1, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', -1, 'system', 1796284319499755729, '\x69736f6c6174696f6e3a206367726f75703d76312b7632206d656d6f72792c706964732c6370752c667265657a65723b206e616d657370616365733d757365722c6d6f756e742c7069642c6970632c7574732c6367726f75703b20757365723d7569642036343031323b2066733d627562626c65777261703b206e6f5f6e65775f70726976733b20636170733d6e6f6e653b206b696c6c3d6367726f75702e6b696c6c2c6367726f75702c7569642c706964206e616d6573706163652c70726f636573732067726f7570730a');
INSERT INTO public.log_chunks VALUES ('01m8xe71jspr29n89pgs39hafq', 1, 2, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 0, 'stdout', 1796284319529306916, '\x48656c6c6f2066726f6d2053696d706c654349206f6e204c696e75780a');
INSERT INTO public.log_chunks VALUES ('01m8xe71jspr29n89pgs39hafq', 1, 3, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 0, 'stderr', 1796284319533687030, '\x6576656e743d0a');
INSERT INTO public.log_chunks VALUES ('01m8xe71jspr29n89pgs39hafq', 1, 4, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 1, 'stdout', 1796284319554192710, '\x6275696c64696e67207372630a636f6d70696c696e67207061727420310a636f6d70696c696e67207061727420320a636f6d70696c696e67207061727420330a');
INSERT INTO public.log_chunks VALUES ('01m8xe71jspr29n89pgs39hafq', 1, 5, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 1, 'stderr', 1796284319554312023, '\x7761726e696e673a207468697320697320612064656d6f0a');
INSERT INTO public.log_chunks VALUES ('01m8xe71jspr29n89pgs39hafq', 1, 6, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 1, 'stdout', 1796284319555272323, '\x6275696c64206f6b0a');
INSERT INTO public.log_chunks VALUES ('01m8xe71jspr29n89pgs39hafq', 1, 7, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 3, 'stdout', 1796284319595309063, '\x7374646f7574206c696e650a');
INSERT INTO public.log_chunks VALUES ('01m8xe71jspr29n89pgs39hafq', 1, 8, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 3, 'stderr', 1796284319596425275, '\x737464657272206c696e650a');
INSERT INTO public.log_chunks VALUES ('01m8xe71jspr29n89pgs39hafq', 1, 9, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 3, 'stdout', 1796284319597116684, '\x524541444d452e6d640a6275696c642e73680a');
INSERT INTO public.log_chunks VALUES ('01m8xe71mfnj208w75arqrc4by', 1, 1, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', -1, 'system', 1796284319743472451, '\x69736f6c6174696f6e3a206367726f75703d76312b7632206d656d6f72792c706964732c6370752c667265657a65723b206e616d657370616365733d757365722c6d6f756e742c7069642c6970632c7574732c6367726f75703b20757365723d7569642036343031333b2066733d627562626c65777261703b206e6f5f6e65775f70726976733b20636170733d6e6f6e653b206b696c6c3d6367726f75702e6b696c6c2c6367726f75702c7569642c706964206e616d6573706163652c70726f636573732067726f7570730a');
INSERT INTO public.log_chunks VALUES ('01m8xe71mfnj208w75arqrc4by', 1, 2, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 0, 'stdout', 1796284319755995870, '\x48656c6c6f2066726f6d2053696d706c654349206f6e204c696e75780a');
INSERT INTO public.log_chunks VALUES ('01m8xe71mfnj208w75arqrc4by', 1, 3, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 0, 'stderr', 1796284319762479059, '\x6576656e743d0a');
INSERT INTO public.log_chunks VALUES ('01m8xe71mfnj208w75arqrc4by', 1, 4, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 1, 'stdout', 1796284319779138643, '\x6275696c64696e67207372630a636f6d70696c696e67207061727420310a636f6d70696c696e67207061727420320a636f6d70696c696e67207061727420330a');
INSERT INTO public.log_chunks VALUES ('01m8xe71mfnj208w75arqrc4by', 1, 5, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 1, 'stderr', 1796284319779194257, '\x7761726e696e673a207468697320697320612064656d6f0a');
INSERT INTO public.log_chunks VALUES ('01m8xe71mfnj208w75arqrc4by', 1, 6, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 1, 'stdout', 1796284319779872431, '\x6275696c64206f6b0a');
INSERT INTO public.log_chunks VALUES ('01m8xe71mfnj208w75arqrc4by', 1, 7, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 3, 'stdout', 1796284319793502881, '\x7374646f7574206c696e650a');
INSERT INTO public.log_chunks VALUES ('01m8xe71mfnj208w75arqrc4by', 1, 8, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 3, 'stderr', 1796284319795177220, '\x737464657272206c696e650a');
INSERT INTO public.log_chunks VALUES ('01m8xe71mfnj208w75arqrc4by', 1, 9, '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 3, 'stdout', 1796284319796223531, '\x524541444d452e6d640a6275696c642e73680a');


--
-- Data for Name: log_runs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.log_runs VALUES ('01m8xe71jspr29n89pgs39hafq', '01m8xe6jenz6vf3fmvtcv0m7x2', 1, 9);
INSERT INTO public.log_runs VALUES ('01m8xe71mfnj208w75arqrc4by', '01m8xe6jenz6vf3fmvtcv0m7x2', 1, 9);


--
-- Data for Name: project_secrets; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.project_secrets VALUES ('01m8xe6zgza05y28fhq0p4azps', 'DEPLOY_KEY', 'k1', '\xcaef697a50178fdf3c4183df89668df1fcbad6f84017d98edc98b4dac0fb65fb4a22dc8fe8fd3293d08b7986fc891949', 1796284319304227239);


--
-- Data for Name: projects; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.projects VALUES ('01m8xe6zgza05y28fhq0p4azps', '01m8xe6jenz6vf3fmvtcv0m7x2', 'demo', 'local', '/tmp/mig/srv/demo-src', 'manual,push', 'standard', 'fa9e9068025ec6b1ed9711ac58ea71d707d869bb8a2f6cf358c9f9450174acae', 1796284317215625515, 'default');


--
-- Data for Name: sched_jobs; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: sched_positions; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.sched_positions VALUES ('run-list', 22);
INSERT INTO public.sched_positions VALUES ('outbox', 22);


--
-- Data for Name: sched_run_numbers; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.sched_run_numbers VALUES ('01m8xe6zgza05y28fhq0p4azps', 2);


--
-- Data for Name: sched_runners; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.sched_runners VALUES ('vm', ',standard,', 1796284319831418010);


--
-- Data for Name: sched_runs; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.sched_runs VALUES ('01m8xe71jspr29n89pgs39hafq', '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 1, 'succeeded', '', 'manual', '', '', 'e098da5dc2dfe7b92390199713e7feb4c66dd1a9', 'admin', 'standard', 1796284319323940621, 1796284319355032888, 1796284319629199990, 11);
INSERT INTO public.sched_runs VALUES ('01m8xe71mfnj208w75arqrc4by', '01m8xe6jenz6vf3fmvtcv0m7x2', '01m8xe6zgza05y28fhq0p4azps', 2, 'succeeded', '', 'manual', '', '', 'e098da5dc2dfe7b92390199713e7feb4c66dd1a9', 'admin', 'standard', 1796284319381765656, 1796284319639328346, 1796284319829786685, 11);


--
-- Name: events_position_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.events_position_seq', 22, true);


--
-- Name: auth_orgs auth_orgs_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_orgs
    ADD CONSTRAINT auth_orgs_name_key UNIQUE (name);


--
-- Name: auth_orgs auth_orgs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_orgs
    ADD CONSTRAINT auth_orgs_pkey PRIMARY KEY (id);


--
-- Name: auth_tokens auth_tokens_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_tokens
    ADD CONSTRAINT auth_tokens_pkey PRIMARY KEY (hash);


--
-- Name: auth_users auth_users_login_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_users
    ADD CONSTRAINT auth_users_login_key UNIQUE (login);


--
-- Name: auth_users auth_users_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.auth_users
    ADD CONSTRAINT auth_users_pkey PRIMARY KEY (id);


--
-- Name: events events_event_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_event_id_key UNIQUE (event_id);


--
-- Name: events events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_pkey PRIMARY KEY ("position");


--
-- Name: events events_stream_version_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.events
    ADD CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version);


--
-- Name: log_chunks log_chunks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.log_chunks
    ADD CONSTRAINT log_chunks_pkey PRIMARY KEY (run_id, attempt, seq);


--
-- Name: log_runs log_runs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.log_runs
    ADD CONSTRAINT log_runs_pkey PRIMARY KEY (run_id);


--
-- Name: project_secrets project_secrets_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.project_secrets
    ADD CONSTRAINT project_secrets_pkey PRIMARY KEY (project_id, name);


--
-- Name: projects projects_org_id_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.projects
    ADD CONSTRAINT projects_org_id_name_key UNIQUE (org_id, name);


--
-- Name: projects projects_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.projects
    ADD CONSTRAINT projects_pkey PRIMARY KEY (id);


--
-- Name: sched_jobs sched_jobs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sched_jobs
    ADD CONSTRAINT sched_jobs_pkey PRIMARY KEY (run_id);


--
-- Name: sched_positions sched_positions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sched_positions
    ADD CONSTRAINT sched_positions_pkey PRIMARY KEY (name);


--
-- Name: sched_run_numbers sched_run_numbers_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sched_run_numbers
    ADD CONSTRAINT sched_run_numbers_pkey PRIMARY KEY (project_id);


--
-- Name: sched_runners sched_runners_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sched_runners
    ADD CONSTRAINT sched_runners_pkey PRIMARY KEY (runner_id);


--
-- Name: sched_runs sched_runs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sched_runs
    ADD CONSTRAINT sched_runs_pkey PRIMARY KEY (run_id);


--
-- Name: sched_jobs_state; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sched_jobs_state ON public.sched_jobs USING btree (state, tier, created_at);


--
-- Name: sched_runs_project_branch; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sched_runs_project_branch ON public.sched_runs USING btree (org_id, project_id, branch, created_at DESC, run_id DESC);


--
-- Name: sched_runs_project_created; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sched_runs_project_created ON public.sched_runs USING btree (org_id, project_id, created_at DESC, run_id DESC);


--
-- Name: sched_runs_project_event; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sched_runs_project_event ON public.sched_runs USING btree (org_id, project_id, event, created_at DESC, run_id DESC);


--
-- Name: sched_runs_project_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sched_runs_project_status ON public.sched_runs USING btree (org_id, project_id, status, created_at DESC, run_id DESC);


--
-- PostgreSQL database dump complete
--


