// snyk-broker-helm's values on this chart: the install Snyk documents (only brokerToken and scmToken) works with
// no accept file; every top-level value of Snyk's values.yaml is supported or refused with a reason (never as an
// "additional property"); and each value Snyk's chart maps to the pod maps the same way here.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { chartDir } from './deps.js';
import { byName, containerOf, envOf, envValue, ofKind, podLabelsOf, podSpecOf, render, renderError, selects, type K8sObject } from './helm.js';

const TOKEN = '9d3a7c2e-5b1f-4e8a-a6d4-0c2b9f7e1a35';
const GH = 'ghp_exampletoken0000000000000000000000';
const FULL = 'rel-ha-broker';
const SHARED = 'github-com-broker-service-rel';
const two = { brokerToken: TOKEN, scmToken: GH };
const clients = (objs: K8sObject[]) => ofKind(objs, 'Deployment');
const secretRef = (d: K8sObject, name: string) => envOf(d).find((e) => e.name === name)?.valueFrom?.secretKeyRef as { name: string; key: string } | undefined;
const secretValue = (objs: K8sObject[], ref: { name: string; key: string } | undefined) =>
  ref ? Buffer.from(byName(objs, 'Secret', ref.name).data[ref.key], 'base64').toString('utf8') : undefined;
let scratch: string | undefined;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'ha-broker-snyk-values-'));
});
after(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** A custom accept.json on disk, for --set-file acceptJson=... as Snyk's README does it. */
async function acceptFile(): Promise<string> {
  const path = join(scratch!, 'accept.json');
  await writeFile(path, JSON.stringify({ private: [{ method: 'GET', path: '/*', origin: 'https://git.example.com' }], public: [] }));
  return path;
}
const PEM = `-----BEGIN CERTIFICATE-----
MIIBnzCCAUWgAwIBAgIURlmPqw4/0kCW3tPgmBts1tWOYUcwCgYIKoZIzj0EAwIw
-----END CERTIFICATE-----`;

/**
 * Every top-level key of snyk-broker-helm's charts/snyk-broker/values.yaml (a fact about Snyk's chart), plus the
 * ones its templates read without a default there (env, disableAutoAcceptRules, autoscaling).
 */
const SNYK_TOP_LEVEL_KEYS = [
  'brokerToken', 'brokerTokenSecret', 'brokerClientUrl', 'brokerServerUrl', 'brokerDispatcherUrl', 'preflightChecks',
  'highAvailabilityMode', 'replicaCount', 'labels', 'disableSuffixes', 'scmType', 'scmToken', 'useExternalSecrets',
  'externalCredentialSecret', 'scmTokenPool', 'scmTokenPoolSecret', 'useExternalSecretScmTokenPool', 'github',
  'githubApi', 'githubGraphQl', 'bitbucketUsername', 'bitbucketPassword', 'bitbucketPat', 'bitbucket', 'bitbucketApi',
  'gitlab', 'azureReposOrg', 'azureReposHost', 'azureReposToken', 'artifactoryUrl', 'artifactoryUrlSecret',
  'baseNexusUrl', 'baseNexusUrlSecret', 'nexusUrl', 'nexusUrlSecret', 'brokerClientValidationUrl',
  'brokerClientValidationUrlSecret', 'jiraUsername', 'jiraPassword', 'jiraPat', 'jiraHostname', 'crType', 'crBase',
  'crUsername', 'crPassword', 'crRoleArn', 'crRegion', 'crExternalId', 'crToken', 'crImage', 'enableAppRisk',
  'checkmarx', 'sonarqubeHostUrl', 'sonarqubeApiToken', 'sonarqubeApiTokenSecret', 'enableCodeAgent',
  'upstreamUrlCodeAgent', 'snykToken', 'snykTokenSecret', 'caImage', 'gitClientUrl', 'logLevel', 'logEnableBody',
  'enableBrokerLocalWebserverOverHttps', 'httpsCert', 'httpsKey', 'httpsSecret', 'caCert', 'caCertFile',
  'caCertFileSecret', 'disableCaCertTrust', 'tlsRejectUnauthorized', 'httpProxy', 'httpsProxy', 'noProxy',
  'acceptJson', 'image', 'imagePullSecrets', 'healthCheckPath', 'systemCheckPath', 'brokerLivenessProbe',
  'brokerReadinessProbe', 'brokerResources', 'crResources', 'caResources', 'deployment', 'nameOverride',
  'fullnameOverride', 'serviceAccount', 'podAnnotations', 'serviceAnnotations', 'podSecurityContext',
  'securityContext', 'securityContextCr', 'securityContextCa', 'service', 'brokerIngress', 'extraObjects',
  'extraVolumes', 'extraVolumeMounts', 'extraContainerSpecs', 'extraPodSpecs', 'extraPodSpecsCr', 'openshift',
  'env', 'disableAutoAcceptRules', 'autoscaling',
];

describe("Snyk's documented install: only brokerToken and scmToken, no accept file", () => {
  for (const haOn of [false, true]) {
    test(`renders with high availability ${haOn ? 'on' : 'off'}: the github-com template, the token from the Secret, Snyk's accept switches`, async () => {
      const objs = await render({ set: { ...two, ...(haOn ? { 'highAvailabilityMode.enabled': true } : {}) } });
      assert.equal(ofKind(objs, 'ConfigMap').length, 0, 'no accept ConfigMap without an accept file');
      const deps = clients(objs);
      assert.equal(deps.length, haOn ? 2 : 1);
      for (const d of deps) {
        assert.equal(envValue(d, 'BROKER_SCM_TYPE'), 'github-com');
        assert.equal(envValue(d, 'ACCEPT'), undefined);
        assert.equal(secretValue(objs, secretRef(d, 'GITHUB_TOKEN')), GH);
        assert.equal(secretValue(objs, secretRef(d, 'BROKER_TOKEN')), TOKEN);
        assert.equal(envValue(d, 'ACCEPT_CODE'), 'true');
        assert.equal(envValue(d, 'ACCEPT_IAC'), 'tf,yaml,yml,json,tpl');
        assert.equal(envValue(d, 'ACCEPT_APPRISK'), 'true');
        assert.equal(envValue(d, 'PORT'), '8000');
        assert.equal(envValue(d, 'BROKER_CLIENT_URL'), `http://${SHARED}.brokers.svc.cluster.local:8000`);
        assert.ok(!(podSpecOf(d).volumes as any[]).some((v) => v.name === 'accept'));
        assert.equal(containerOf(d).ports[0].containerPort, 8000);
      }
      const svc = byName(objs, 'Service', SHARED);
      assert.equal(svc.spec.ports[0].port, 8000);
      for (const d of deps) assert.ok(selects(svc.spec.selector, podLabelsOf(d)));
      // The credential is never in the pod spec in clear.
      assert.ok(!JSON.stringify(deps).includes(GH), 'the SCM token appears in a Deployment');
    });
  }

  test('the SCM type a preset needs is checked at install: a clear message names the missing values', async () => {
    assert.match(await renderError({ set: { brokerToken: TOKEN, scmType: 'gitlab', scmToken: 'x' } }), /scmType gitlab needs gitlab \(the GitLab host, without https:\/\/\)/);
    assert.match(
      await renderError({ set: { brokerToken: TOKEN, scmType: 'bitbucket-server', bitbucket: 'b.example.com' } }),
      /scmType bitbucket-server needs bitbucketUsername, scmToken .*BITBUCKET_PASSWORD/,
    );
    assert.match(await renderError({ set: { brokerToken: TOKEN, scmType: 'nexus' } }), /scmType nexus needs baseNexusUrl/);
    assert.match(await renderError({ set: { brokerToken: TOKEN, scmType: 'apprisk' } }), /apprisk needs sonarqubeHostUrl or checkmarx/);
    // With the user's own accept file the template is not used: no such requirement.
    const own = await render({ set: { brokerToken: TOKEN, scmType: 'gitlab' }, setFile: { acceptJson: await acceptFile() } });
    assert.equal(envValue(clients(own)[0]!, 'ACCEPT'), '/etc/ha-broker/accept/accept.json');
  });
});

describe("every top-level value of snyk-broker-helm's values.yaml", () => {
  test('has a schema entry that says what it does here, and a values file with all of them at Snyk defaults installs', async () => {
    const schema = JSON.parse(await readFile(join(chartDir, 'values.schema.json'), 'utf8')) as { properties: Record<string, { description?: string }> };
    for (const key of SNYK_TOP_LEVEL_KEYS) {
      assert.ok(schema.properties[key], `the schema does not know snyk-broker-helm's ${key}: it would be refused as an additional property`);
      assert.ok((schema.properties[key]!.description ?? '').length > 5, `${key} has no description`);
    }
    const file = parseYaml(await readFile(join(chartDir, 'ci', 'snyk-all-keys-values.yaml'), 'utf8')) as Record<string, unknown>;
    for (const key of SNYK_TOP_LEVEL_KEYS.filter((k) => !['env', 'disableAutoAcceptRules', 'autoscaling'].includes(k))) {
      assert.ok(key in file, `ci/snyk-all-keys-values.yaml lacks ${key}`);
    }
    const objs = await render({ valuesFiles: ['ci/snyk-all-keys-values.yaml'] });
    const d = clients(objs)[0]!;
    assert.equal(containerOf(d).image, 'ghcr.io/ha-broker/ha-broker:0.1.0', "Snyk's image repository is replaced by ours");
    assert.deepEqual(containerOf(d).resources, { limits: { cpu: 1, memory: '256Mi' }, requests: { cpu: 1, memory: '256Mi' } });
    assert.equal(containerOf(d).livenessProbe.timeoutSeconds, 1, "brokerLivenessProbe.config is applied");
    assert.equal(containerOf(d).livenessProbe.httpGet.path, '/livez');
    assert.equal(podSpecOf(d).serviceAccountName, 'snyk-broker');
  });

  const refused: [string, Record<string, string | boolean>, RegExp][] = [
    ['scmType=container-registry-agent', { scmType: 'container-registry-agent' }, /scmType container-registry-agent needs Snyk's container registry agent image/],
    ['enableCodeAgent', { enableCodeAgent: 'true' }, /enableCodeAgent needs Snyk's code agent image/],
    ['crType', { crType: 'harbor-cr' }, /crType configures Snyk's container registry agent/],
    ['crPassword', { crPassword: 'x' }, /crPassword configures Snyk's container registry agent/],
    ['snykToken', { snykToken: 'x' }, /snykToken configures Snyk's code agent/],
    ['gitClientUrl', { gitClientUrl: 'http://code-agent:3000' }, /gitClientUrl configures Snyk's code agent/],
    ['snykTokenSecret.name', { 'snykTokenSecret.name': 's' }, /snykTokenSecret configures Snyk's code agent/],
    ['autoscaling.enabled', { 'autoscaling.enabled': true }, /autoscaling\.enabled: ha-broker runs each client as its own Deployment/],
  ];
  for (const [name, set, message] of refused) {
    test(`${name} fails the install with a message saying why`, async () => {
      const err = await renderError({ set: { ...two, ...set } });
      assert.match(err, message);
      assert.doesNotMatch(err, /additional propert/i);
    });
  }

  test('values that only size or place the side images are accepted and change nothing', async () => {
    const base = await render({ set: two });
    const withSide = await render({
      set: { ...two, crImage: '1.2.3', 'crResources.limits.cpu': 2, 'service.crType': 'LoadBalancer', 'image.crRepository': 'x/y', caImage: '1.0' },
    });
    assert.deepEqual(withSide, base);
  });
});

describe("snyk-broker-helm's values map to the pod as in Snyk's chart", () => {
  test('scmType types: credentials from the chart Secret under the variable Snyk sets, host values in clear', async () => {
    const cases: [Record<string, string>, Record<string, string>, string[]][] = [
      [{ scmType: 'github-enterprise', scmToken: 't', github: 'ghe.example.com' }, { GITHUB: 'ghe.example.com' }, ['GITHUB_TOKEN']],
      [{ scmType: 'bitbucket-server-bearer-auth', bitbucketPat: 'p', bitbucket: 'bb.example.com' }, { BITBUCKET: 'bb.example.com' }, ['BITBUCKET_PAT']],
      [{ scmType: 'jira', jiraUsername: 'u', jiraPassword: 'p', jiraHostname: 'jira.example.com' }, { JIRA_USERNAME: 'u', JIRA_HOSTNAME: 'jira.example.com' }, ['JIRA_PASSWORD']],
      [{ scmType: 'jira-bearer-auth', jiraPat: 'p', jiraHostname: 'jira.example.com' }, { JIRA_HOSTNAME: 'jira.example.com' }, ['JIRA_PAT']],
      [{ scmType: 'artifactory', artifactoryUrl: 'u:p@a.example.com/artifactory', brokerClientValidationUrl: 'https://a/ping' }, {}, ['ARTIFACTORY_URL', 'BROKER_CLIENT_VALIDATION_URL']],
      [{ scmType: 'nexus2', baseNexusUrl: 'https://n.example.com' }, {}, ['BASE_NEXUS_URL']],
      [{ scmType: 'apprisk', sonarqubeHostUrl: 'https://sq.example.com', sonarqubeApiToken: 'sq', checkmarx: 'cx.example.com' }, { SONARQUBE_HOST_URL: 'https://sq.example.com', CHECKMARX: 'cx.example.com' }, ['SONARQUBE_API_TOKEN']],
    ];
    for (const [set, plain, secret] of cases) {
      const objs = await render({ setString: { brokerToken: TOKEN, ...set } });
      const d = clients(objs)[0]!;
      assert.equal(envValue(d, 'BROKER_SCM_TYPE'), set.scmType);
      for (const [k, v] of Object.entries(plain)) assert.equal(envValue(d, k), v, `${set.scmType}: ${k}`);
      for (const k of secret) assert.equal(secretRef(d, k)?.name, FULL, `${set.scmType}: ${k} must come from the chart's Secret`);
      assert.equal(envValue(d, 'NEXUS_URL'), undefined, 'an empty value is left to the template default');
      const acceptDefaults = ['github-enterprise', 'bitbucket-server-bearer-auth'].includes(set.scmType!);
      assert.equal(envValue(d, 'ACCEPT_CODE'), acceptDefaults ? 'true' : undefined, `${set.scmType}: ACCEPT_CODE`);
    }
  });

  test('existing Secrets: brokerTokenSecret, externalCredentialSecret, scmTokenPoolSecret, useExternalSecrets with Snyk names', async () => {
    const objs = await render({
      set: { 'brokerTokenSecret.name': 'bt', 'externalCredentialSecret.name': 'cred', 'externalCredentialSecret.key': 'tok', 'scmTokenPoolSecret.name': 'pool' },
    });
    const d = clients(objs)[0]!;
    assert.deepEqual(secretRef(d, 'BROKER_TOKEN'), { name: 'bt', key: 'github-com-broker-token-key' });
    assert.deepEqual(secretRef(d, 'GITHUB_TOKEN'), { name: 'cred', key: 'tok' });
    assert.deepEqual(secretRef(d, 'GITHUB_TOKEN_POOL'), { name: 'pool', key: 'github-com-token-pool-key' });
    assert.equal(ofKind(objs, 'Secret').length, 0, 'nothing to store: no Secret');
    const ext = await render({ set: { useExternalSecrets: true, scmType: 'gitlab', gitlab: 'gl.example.com' } });
    const g = clients(ext)[0]!;
    assert.deepEqual(secretRef(g, 'BROKER_TOKEN'), { name: 'gitlab-broker-token-rel', key: 'gitlab-broker-token-key' });
    assert.deepEqual(secretRef(g, 'GITLAB_TOKEN'), { name: 'gitlab-token-rel', key: 'gitlab-token-key' });
    assert.equal(ofKind(ext, 'Secret').length, 0);
    const pooled = await render({ set: { ...two, useExternalSecretScmTokenPool: true, scmTokenPool: 'a\\,b' } });
    const p = clients(pooled)[0]!;
    assert.equal(secretRef(p, 'GITHUB_TOKEN'), undefined, "Snyk's chart drops the single token with an external pool");
    assert.deepEqual(secretRef(p, 'GITHUB_TOKEN_POOL'), { name: 'github-com-token-pool-rel', key: 'github-com-token-pool-key' });
  });

  test('accept switches: Snyk defaults only with the template rules; disableAutoAcceptRules, enableAppRisk and accept* change them', async () => {
    const env = async (set: Record<string, string | boolean>, setString: Record<string, string> = {}) => clients(await render({ set: { ...two, ...set }, setString }))[0]!;
    const off = await env({ disableAutoAcceptRules: true }, { enableAppRisk: 'false' });
    for (const n of ['ACCEPT_CODE', 'ACCEPT_IAC', 'ACCEPT_APPRISK']) assert.equal(envValue(off, n), undefined, n);
    const explicit = await env({}, { acceptCode: 'false', acceptIac: 'tf', acceptGit: 'true', acceptLargeManifests: 'true', acceptCustomPrTemplates: 'false', acceptEssentials: 'true' });
    assert.deepEqual(
      ['ACCEPT_CODE', 'ACCEPT_IAC', 'ACCEPT_APPRISK', 'ACCEPT_GIT', 'ACCEPT_LARGE_MANIFESTS', 'ACCEPT_CUSTOM_PR_TEMPLATES', 'ACCEPT_ESSENTIALS'].map((n) => envValue(explicit, n)),
      ['false', 'tf', 'true', 'true', 'true', 'false', 'true'],
    );
    const own = clients(await render({ set: two, setFile: { acceptJson: await acceptFile() } }))[0]!;
    assert.equal(envValue(own, 'ACCEPT_CODE'), undefined, "Snyk's chart adds no ACCEPT_* with a custom accept.json");
    assert.equal(envValue(own, 'ACCEPT'), '/etc/ha-broker/accept/accept.json');
    assert.match(await renderError({ set: { ...two, 'accept.public[0].method': 'GET' }, setFile: { acceptJson: await acceptFile() } }), /give the accept rules one way only, got accept and acceptJson/);
  });

  test('caCert as a file inside the chart (Snyk form), caCertFile as PEM, caCertFileSecret; anything not PEM fails', async () => {
    const fromFile = await render({ set: two, setString: { caCertFile: PEM } });
    assert.equal(Buffer.from(byName(fromFile, 'Secret', `${FULL}-ca`).data['ca.pem'], 'base64').toString(), PEM);
    const d = clients(fromFile)[0]!;
    assert.equal(envValue(d, 'CA_CERT'), '/etc/ha-broker/ca/ca.pem');
    assert.equal(envValue(d, 'NODE_EXTRA_CA_CERTS'), '/etc/ha-broker/ca/ca.pem');
    assert.match(await renderError({ set: { ...two, caCert: 'ca.pem' } }), /caCert: "ca\.pem" is neither PEM text .*nor a file inside the chart directory.*--set-file caCertFile=ca\.pem/);
    assert.match(await renderError({ set: two, setString: { caCertFile: 'not a certificate' } }), /caCertFile: "not a certificate" is neither PEM/);
    assert.match(await renderError({ set: two, setString: { caCertFile: '-----BEGIN CERTIFICATE-----\nabc' } }), /caCertFile is not PEM/);
    const ext = clients(await render({ set: { ...two, 'caCertFileSecret.name': 'corp-ca' } }))[0]!;
    assert.deepEqual((podSpecOf(ext).volumes as any[]).find((v) => v.name === 'ca').secret, { secretName: 'corp-ca', items: [{ key: 'cacert', path: 'ca.pem' }] });
    // Snyk's form: the file copied into the chart directory.
    const dir = await mkdtemp(join(tmpdir(), 'ha-broker-chart-'));
    try {
      await cp(chartDir, join(dir, 'ha-broker'), { recursive: true });
      await writeFile(join(dir, 'ha-broker', 'corp-ca.pem'), PEM);
      const objs = await render({ set: { ...two, caCert: 'corp-ca.pem' }, chart: join(dir, 'ha-broker') });
      assert.equal(Buffer.from(byName(objs, 'Secret', `${FULL}-ca`).data['ca.pem'], 'base64').toString(), PEM);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('tlsRejectUnauthorized and disableCaCertTrust give NODE_TLS_REJECT_UNAUTHORIZED=0 where Snyk gives it (only "0"/false)', async () => {
    const tls = async (set: Record<string, string | boolean>, setString: Record<string, string> = {}) =>
      envValue(clients(await render({ set: { ...two, ...set }, setString }))[0]!, 'NODE_TLS_REJECT_UNAUTHORIZED');
    assert.equal(await tls({}), undefined);
    assert.equal(await tls({}, { tlsRejectUnauthorized: '0' }), '0');
    assert.equal(await tls({ tlsRejectUnauthorized: false }), '0');
    assert.equal(await tls({}, { tlsRejectUnauthorized: '1' }), undefined, 'unlike Snyk, "1" keeps the checks on');
    assert.equal(await tls({}, { tlsRejectUnauthorized: '0', caCertFile: PEM }), undefined, 'with a CA, Snyk ignores tlsRejectUnauthorized');
    assert.equal(await tls({ disableCaCertTrust: true }, { caCertFile: PEM }), '0');
  });

  test('HTTPS: httpsCert/httpsKey (PEM) or httpsSecret give HTTPS_CERT/HTTPS_KEY, HTTPS probes and an https client URL', async () => {
    const key = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----';
    const objs = await render({ set: two, setString: { httpsCert: PEM, httpsKey: key } });
    const d = clients(objs)[0]!;
    const tlsSecret = byName(objs, 'Secret', `${FULL}-tls`);
    assert.equal(tlsSecret.type, 'kubernetes.io/tls');
    assert.equal(envValue(d, 'HTTPS_CERT'), '/etc/ha-broker/tls/tls.crt');
    assert.equal(envValue(d, 'HTTPS_KEY'), '/etc/ha-broker/tls/tls.key');
    assert.equal(containerOf(d).livenessProbe.httpGet.scheme, 'HTTPS');
    assert.equal(containerOf(d).readinessProbe.httpGet.scheme, 'HTTPS');
    assert.match(envValue(d, 'BROKER_CLIENT_URL')!, /^https:\/\//);
    const ext = clients(await render({ set: { ...two, 'httpsSecret.name': 'corp-tls' } }))[0]!;
    assert.equal((podSpecOf(ext).volumes as any[]).find((v) => v.name === 'tls').secret.secretName, 'corp-tls');
    assert.match(await renderError({ set: two, setString: { httpsCert: PEM } }), /httpsCert and httpsKey go together/);
    const flag = clients(await render({ set: { ...two, enableBrokerLocalWebserverOverHttps: true } }))[0]!;
    assert.equal(containerOf(flag).livenessProbe.httpGet.scheme, 'HTTPS');
  });

  test('env, labels, serviceAnnotations, service.brokerType, disableSuffixes, brokerResources, probes off, containerPort', async () => {
    const objs = await render({
      set: {
        ...two,
        'env[0].name': 'LOG_LEVEL',
        'env[0].value': 'debug',
        'env[1].name': 'BROKER_CLIENT_LOCATION',
        'env[1].value': 'dc-1',
        'labels.team': 'platform',
        'serviceAnnotations.example\\.com/lb': 'internal',
        'service.brokerType': 'LoadBalancer',
        disableSuffixes: true,
        'brokerResources.requests.cpu': '1',
        'brokerLivenessProbe.enabled': false,
        'deployment.container.containerPort': 9000,
      },
    });
    const d = clients(objs)[0]!;
    assert.equal(envValue(d, 'LOG_LEVEL'), 'debug', "an env entry replaces the chart's");
    assert.equal(envValue(d, 'BROKER_CLIENT_LOCATION'), 'dc-1');
    const names = envOf(d).map((e) => e.name);
    assert.equal(new Set(names).size, names.length);
    for (const o of objs) assert.equal(o.metadata.labels?.team, 'platform', `${o.kind}/${o.metadata.name} lacks the label`);
    assert.equal(podLabelsOf(d).team, 'platform');
    const svc = byName(objs, 'Service', 'github-com-broker-service');
    assert.equal(svc.spec.type, 'LoadBalancer');
    assert.equal(svc.metadata.annotations?.['example.com/lb'], 'internal');
    assert.deepEqual(containerOf(d).resources, { requests: { cpu: 1 } });
    assert.equal(containerOf(d).livenessProbe, undefined);
    assert.ok(containerOf(d).readinessProbe);
    assert.equal(containerOf(d).ports[0].containerPort, 9000);
    assert.equal(envValue(d, 'PORT'), '9000');
  });

  test('extraPodSpecs, extraContainerSpecs, extraObjects, openshift, serviceAccount.enabled, brokerDispatcherUrl', async () => {
    const objs = await render({
      set: {
        ...two,
        'highAvailabilityMode.enabled': true,
        brokerDispatcherUrl: 'https://api.eu.snyk.io',
        'extraPodSpecs.hostAliases[0].ip': '10.0.0.1',
        'extraPodSpecs.hostAliases[0].hostnames[0]': 'git.example.internal',
        'extraPodSpecs.tolerations[0].key': 'dedicated',
        'extraPodSpecs.tolerations[0].operator': 'Exists',
        'extraContainerSpecs.workingDir': '/tmp',
        'extraObjects[0].apiVersion': 'v1',
        'extraObjects[0].kind': 'ConfigMap',
        'extraObjects[0].metadata.name': 'extra-{{ .Release.Name }}',
        openshift: true,
        'serviceAccount.enabled': false,
      },
    });
    for (const d of clients(objs)) {
      assert.equal(envValue(d, 'BROKER_DISPATCHER_BASE_URL'), 'https://api.eu.snyk.io');
      const spec = podSpecOf(d);
      assert.deepEqual(spec.hostAliases, [{ ip: '10.0.0.1', hostnames: ['git.example.internal'] }]);
      assert.deepEqual(spec.tolerations, [{ key: 'dedicated', operator: 'Exists' }]);
      assert.equal(containerOf(d).workingDir, '/tmp');
      assert.equal(spec.securityContext.runAsUser, undefined);
      assert.equal(containerOf(d).securityContext.runAsUser, undefined);
      assert.equal(spec.serviceAccountName, 'default');
    }
    assert.ok(byName(objs, 'ConfigMap', 'extra-rel'));
    assert.equal(ofKind(objs, 'ServiceAccount').length, 0);
    // highAvailabilityMode.dispatcherUrl still wins over the alias.
    const both = await render({ set: { ...two, 'highAvailabilityMode.enabled': true, brokerDispatcherUrl: 'https://a.example', 'highAvailabilityMode.dispatcherUrl': 'https://b.example' } });
    assert.equal(envValue(clients(both)[0]!, 'BROKER_DISPATCHER_BASE_URL'), 'https://b.example');
  });

  test('brokerIngress: an Ingress to the shared Service on service.port, as in Snyk chart', async () => {
    const objs = await render({ valuesFiles: ['ci/snyk-azure-repos-values.yaml'] });
    const ing = byName(objs, 'Ingress', FULL);
    assert.equal(ing.spec.ingressClassName, 'nginx');
    assert.equal(ing.spec.rules[0].host, 'broker.example.com');
    assert.deepEqual(ing.spec.rules[0].http.paths[0], {
      path: '/',
      pathType: 'Prefix',
      backend: { service: { name: 'azure-repos-broker-service-rel', port: { number: 8000 } } },
    });
    assert.ok(byName(objs, 'Service', 'azure-repos-broker-service-rel'));
    assert.deepEqual(ing.spec.tls, [{ secretName: 'broker-example-tls', hosts: ['broker.example.com'] }]);
    assert.equal(ofKind(await render({ set: two }), 'Ingress').length, 0, 'no Ingress by default');
  });
});
