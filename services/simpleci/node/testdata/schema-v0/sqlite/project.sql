PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE projects (
		id TEXT PRIMARY KEY,
		org_id TEXT NOT NULL,
		name TEXT NOT NULL,
		provider TEXT NOT NULL,
		repository TEXT NOT NULL,
		events TEXT NOT NULL,
		tier TEXT NOT NULL,
		webhook_secret TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		network TEXT NOT NULL DEFAULT 'default',
		UNIQUE (org_id, name));
INSERT INTO projects VALUES('01m8xe572fgxv94tt5t2hvw6tp','01m8xe56x1g87mf407sgx7cmvv','demo','local','/tmp/mig/dev/demo-repo','manual,push','standard','887ab02475ff851c715607f02763f5d0fac8da3ba060e08b05176aeae7bfb8cb',1796284259407421769,'default');
CREATE TABLE project_secrets (
		project_id TEXT NOT NULL,
		name TEXT NOT NULL,
		key_id TEXT NOT NULL,
		sealed BLOB NOT NULL,
		updated_at BIGINT NOT NULL,
		PRIMARY KEY (project_id, name));
INSERT INTO project_secrets VALUES('01m8xe572fgxv94tt5t2hvw6tp','DEPLOY_KEY','k1',X'ed083cc70af4484908105931b6a71ae941a56dac87695cd9ec825e1277b3c742168965642effa35cc2003cb3b2e1f440',1796284355824669602);
COMMIT;
