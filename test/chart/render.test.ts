// Tests on the objects the chart renders: the HA layout, the env the client reads, the region
// shortcut, the replicaCount limits, names, labels, security and scheduling defaults.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { chartDir } from './deps.js';
import {
  DEFAULT_NAMESPACE,
  DEFAULT_RELEASE,
  byName,
  containerOf,
  envOf,
  envValue,
  ofKind,
  podLabelsOf,
  podSpecOf,
  render,
  renderError,
  selects,
  type K8sObject,
} from './helm.js';

const FULL = `${DEFAULT_RELEASE}-ha-broker`;
/** The shared (or single) Service: snyk-broker-helm's name, "<scmType>-broker-service-<release>". */
const SHARED = `github-com-broker-service-${DEFAULT_RELEASE}`;
const TOKEN = '9d3a7c2e-5b1f-4e8a-a6d4-0c2b9f7e1a35';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const base = { valuesFiles: ['ci/default-values.yaml'] };
const ha = (n: number, set: Record<string, string | number | boolean> = {}) => ({
  valuesFiles: ['ci/default-values.yaml'],
  set: { 'highAvailabilityMode.enabled': true, replicaCount: n, ...set },
});

const clients = (objs: K8sObject[]) => ofKind(objs, 'Deployment');

function sharedUrl(release = DEFAULT_RELEASE, ns = DEFAULT_NAMESPACE, port = 8000): string {
  return `http://github-com-broker-service-${release}.${ns}.svc.cluster.local:${port}`;
}

describe('high availability off (default)', () => {
  test('one Deployment with one pod, one Service, no PodDisruptionBudget', async () => {
    const objs = await render(base);
    const deps = clients(objs);
    assert.equal(deps.length, 1);
    assert.equal(deps[0]!.metadata.name, FULL);
    assert.equal(deps[0]!.spec.replicas, 1);
    const svcs = ofKind(objs, 'Service');
    assert.equal(svcs.length, 1);
    assert.equal(svcs[0]!.metadata.name, SHARED);
    assert.ok(selects(svcs[0]!.spec.selector, podLabelsOf(deps[0]!)), 'the Service does not select the pod');
    assert.equal(ofKind(objs, 'PodDisruptionBudget').length, 0);
    assert.equal(envValue(deps[0]!, 'BROKER_HA_MODE_ENABLED'), 'false');
    assert.equal(envValue(deps[0]!, 'BROKER_DISPATCHER_BASE_URL'), undefined);
    assert.equal(envValue(deps[0]!, 'BROKER_SERVER_URL'), 'https://broker.snyk.io');
    assert.equal(envValue(deps[0]!, 'BROKER_CLIENT_URL'), sharedUrl());
  });

  test('replicaCount is ignored (and not range-checked beyond the schema) when HA is off', async () => {
    const objs = await render({ ...base, set: { replicaCount: 1 } });
    assert.equal(clients(objs).length, 1);
  });
});

describe('high availability on', () => {
  test('--set highAvailabilityMode.enabled=true alone gives a working HA set of 2', async () => {
    const objs = await render({ ...base, set: { 'highAvailabilityMode.enabled': true } });
    assert.deepEqual(clients(objs).map((d) => d.metadata.name), [`${FULL}-0`, `${FULL}-1`]);
    for (const d of clients(objs)) {
      assert.equal(envValue(d, 'BROKER_HA_MODE_ENABLED'), 'true');
      assert.equal(envValue(d, 'BROKER_DISPATCHER_BASE_URL'), 'https://api.snyk.io');
    }
    assert.equal(ofKind(objs, 'PodDisruptionBudget').length, 1);
  });

  test('3 replicas: 3 Deployments of one pod, 3 per-replica Services + 1 shared, one BROKER_CLIENT_URL, distinct ids', async () => {
    const objs = await render(ha(3));
    const deps = clients(objs);
    assert.deepEqual(deps.map((d) => d.metadata.name), [`${FULL}-0`, `${FULL}-1`, `${FULL}-2`]);
    for (const d of deps) assert.equal(d.spec.replicas, 1, `${d.metadata.name} must run exactly one pod`);

    const svcs = ofKind(objs, 'Service');
    assert.equal(svcs.length, 4);
    const shared = byName(objs, 'Service', SHARED);
    assert.deepEqual(
      deps.filter((d) => selects(shared.spec.selector, podLabelsOf(d))).map((d) => d.metadata.name),
      deps.map((d) => d.metadata.name),
      'the shared Service must select every replica',
    );
    for (let i = 0; i < 3; i++) {
      const svc = byName(objs, 'Service', `${FULL}-${i}`);
      const selected = deps.filter((d) => selects(svc.spec.selector, podLabelsOf(d))).map((d) => d.metadata.name);
      assert.deepEqual(selected, [`${FULL}-${i}`], `Service ${FULL}-${i} must select exactly its replica`);
      assert.equal(svc.spec.ports[0].targetPort, 'http');
    }
    // Each Deployment's selector matches its own pods only (selectors are immutable: keep them exact).
    for (const d of deps) {
      const matching = deps.filter((other) => selects(d.spec.selector.matchLabels, podLabelsOf(other)));
      assert.deepEqual(matching.map((m) => m.metadata.name), [d.metadata.name]);
    }

    const urls = new Set(deps.map((d) => envValue(d, 'BROKER_CLIENT_URL')));
    assert.deepEqual([...urls], [sharedUrl()], 'BROKER_CLIENT_URL must be the same for all clients');
    const ids = deps.map((d) => envValue(d, 'BROKER_CLIENT_ID')!);
    for (const id of ids) assert.match(id, UUID);
    assert.equal(new Set(ids).size, 3, 'BROKER_CLIENT_ID must differ per replica');
    const tokens = deps.map((d) => JSON.stringify(envOf(d).find((e) => e.name === 'BROKER_TOKEN')));
    assert.equal(new Set(tokens).size, 1, 'all clients use the same token');

    const pdb = byName(objs, 'PodDisruptionBudget', FULL);
    assert.equal(pdb.spec.maxUnavailable, 1);
    for (const d of deps) assert.ok(selects(pdb.spec.selector.matchLabels, podLabelsOf(d)));
  });

  test('client ids are stable: the same across renders and when replicaCount changes', async () => {
    const idsOf = async (n: number) => clients(await render(ha(n))).map((d) => envValue(d, 'BROKER_CLIENT_ID'));
    const three = await idsOf(3);
    assert.deepEqual(await idsOf(3), three);
    assert.deepEqual((await idsOf(2)), three.slice(0, 2));
    assert.deepEqual((await idsOf(4)).slice(0, 3), three);
    // ... but differ between releases sharing a namespace.
    const other = clients(await render({ ...ha(3), release: 'other' })).map((d) => envValue(d, 'BROKER_CLIENT_ID'));
    assert.equal(new Set([...three, ...other]).size, 6);
  });

  test('scaling 3 -> 2 removes replica 2 only and leaves replicas 0 and 1 untouched (no rollout)', async () => {
    const three = await render(ha(3));
    const two = await render(ha(2));
    const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;
    const twoKeys = new Set(two.map(key));
    const removed = three.filter((o) => !twoKeys.has(key(o))).map(key);
    assert.deepEqual(removed.sort(), [`Deployment/${FULL}-2`, `Service/${FULL}-2`]);
    const threeByKey = new Map(three.map((o) => [key(o), o]));
    for (const o of two) assert.deepEqual(o, threeByKey.get(key(o)), `${key(o)} changes when scaling down`);
  });

  test('replicaCount 5 fails: the schema says so, and the template does too without the schema', async () => {
    const schemaErr = await renderError(ha(5));
    assert.match(schemaErr, /replicaCount/);
    assert.match(schemaErr, /less than or equal to 4/);
    const tplErr = await renderError({ ...ha(5), extraArgs: ['--skip-schema-validation'] });
    assert.match(tplErr, /replicaCount must be between 2 and 4 when highAvailabilityMode\.enabled=true/);
    assert.match(tplErr, /got 5/);
    const one = await renderError({ ...ha(1), extraArgs: ['--skip-schema-validation'] });
    assert.match(one, /replicaCount must be between 2 and 4/);
    assert.match(await renderError(ha(1)), /replicaCount: Must be greater than or equal to 2/);
  });

  test('4 replicas is allowed', async () => {
    assert.equal(clients(await render(ha(4))).length, 4);
  });
});

describe('regions and URLs', () => {
  const cases: [string, string, string][] = [
    ['us', 'https://broker.snyk.io', 'https://api.snyk.io'],
    ['us2', 'https://broker.us.snyk.io', 'https://api.us.snyk.io'],
    ['eu', 'https://broker.eu.snyk.io', 'https://api.eu.snyk.io'],
    ['au', 'https://broker.au.snyk.io', 'https://api.au.snyk.io'],
  ];
  for (const [region, server, api] of cases) {
    test(`region ${region} sets the broker server and dispatcher URLs`, async () => {
      for (const d of clients(await render(ha(2, { region })))) {
        assert.equal(envValue(d, 'BROKER_SERVER_URL'), server);
        assert.equal(envValue(d, 'BROKER_DISPATCHER_BASE_URL'), api);
      }
    });
  }

  test('the eu ci value set renders EU URLs', async () => {
    for (const d of clients(await render({ valuesFiles: ['ci/eu-region-values.yaml'] }))) {
      assert.equal(envValue(d, 'BROKER_SERVER_URL'), 'https://broker.eu.snyk.io');
      assert.equal(envValue(d, 'BROKER_DISPATCHER_BASE_URL'), 'https://api.eu.snyk.io');
    }
  });

  test('explicit URLs win over the region', async () => {
    const objs = await render(
      ha(2, {
        region: 'eu',
        'highAvailabilityMode.dispatcherUrl': 'https://dispatcher.example.com',
        'highAvailabilityMode.dispatcherUrlPrefix': '/hidden/brokers',
      }),
    );
    for (const d of clients(objs)) {
      assert.equal(envValue(d, 'BROKER_DISPATCHER_BASE_URL'), 'https://dispatcher.example.com');
      assert.equal(envValue(d, 'BROKER_SERVER_URL'), 'https://broker.eu.snyk.io');
      assert.equal(envValue(d, 'DISPATCHER_URL_PREFIX'), '/hidden/brokers');
    }
    const objs2 = await render(ha(2, { region: 'au', brokerServerUrl: 'https://broker.internal.example.com' }));
    for (const d of clients(objs2)) {
      assert.equal(envValue(d, 'BROKER_SERVER_URL'), 'https://broker.internal.example.com');
      assert.equal(envValue(d, 'BROKER_DISPATCHER_BASE_URL'), 'https://api.au.snyk.io');
    }
  });

  test('brokerClientUrl is one value for all replicas, default or given', async () => {
    const objs = await render({ ...ha(3, { 'service.port': 7341, clusterDomain: 'corp.local' }), namespace: 'scm' });
    for (const d of clients(objs)) {
      assert.equal(envValue(d, 'BROKER_CLIENT_URL'), `http://${SHARED}.scm.svc.corp.local:7341`);
    }
    const given = await render(ha(3, { brokerClientUrl: 'https://broker.example.com' }));
    for (const d of clients(given)) assert.equal(envValue(d, 'BROKER_CLIENT_URL'), 'https://broker.example.com');
  });

  test('an unknown region is rejected', async () => {
    assert.match(await renderError({ ...base, set: { region: 'mars' } }), /region/);
    assert.match(
      await renderError({ ...base, set: { region: 'mars' }, extraArgs: ['--skip-schema-validation'] }),
      /region must be one of us, us2, eu, au/,
    );
  });
});

describe('values schema', () => {
  test('rejects wrong types and unknown values', async () => {
    assert.match(await renderError({ ...base, set: { replicaCount: 'three' } }), /replicaCount: Invalid type\. Expected: integer, given: string/);
    assert.match(
      await renderError({ ...base, setString: { 'highAvailabilityMode.enabled': 'true' } }),
      /highAvailabilityMode\.enabled: Invalid type\. Expected: (boolean|\[boolean,null\]), given: string/,
    );
    assert.match(await renderError({ ...base, set: { replicaCont: 3 } }), /replicaCont/);
    assert.match(await renderError({ ...base, set: { logLevel: 'loud' } }), /logLevel/);
    assert.match(await renderError({ ...base, set: { brokerServerUrl: 'broker.snyk.io' } }), /brokerServerUrl/);
    assert.match(await renderError({ ...base, set: { 'image.pullPolicy': 'Sometimes' } }), /pullPolicy/);
  });
});

describe('token, accept.json, CA, proxy and env', () => {
  test('the token comes from the chart Secret, or from existingSecret (then no Secret is created)', async () => {
    const objs = await render(base);
    const secret = byName(objs, 'Secret', FULL);
    assert.equal(Buffer.from(secret.data.BROKER_TOKEN, 'base64').toString(), TOKEN);
    const d = clients(objs)[0]!;
    assert.deepEqual(envOf(d).find((e) => e.name === 'BROKER_TOKEN')?.valueFrom, {
      secretKeyRef: { name: FULL, key: 'BROKER_TOKEN' },
    });
    const ext = await render({ valuesFiles: ['ci/existing-secret-values.yaml'] });
    assert.equal(ofKind(ext, 'Secret').length, 0, 'no Secret may be created with existingSecret and existingCaCertSecret');
    assert.equal(ofKind(ext, 'ConfigMap').length, 0, 'no ConfigMap may be created with existingConfigMap');
    for (const dep of clients(ext)) {
      assert.deepEqual(envOf(dep).find((e) => e.name === 'BROKER_TOKEN')?.valueFrom, {
        secretKeyRef: { name: 'broker-token', key: 'BROKER_TOKEN' },
      });
      const vols = podSpecOf(dep).volumes as any[];
      assert.deepEqual(vols.find((v) => v.name === 'accept').configMap, {
        name: 'broker-accept',
        items: [{ key: 'accept.json', path: 'accept.json' }],
      });
      assert.deepEqual(vols.find((v) => v.name === 'ca').secret, {
        secretName: 'broker-ca',
        items: [{ key: 'ca.pem', path: 'ca.pem' }],
      });
    }
  });

  test('a missing token, or no accept file and no SCM credential, fails with a clear message', async () => {
    assert.match(await renderError({ set: { 'accept.private[0].method': 'GET' } }), /brokerToken is required \(or set existingSecret/);
    assert.match(
      await renderError({ set: { brokerToken: TOKEN } }),
      /scmType github-com needs scmToken .*GITHUB_TOKEN \(with no accept file the chart runs Snyk's github-com template/,
    );
  });

  test('accept.json is mounted from the ConfigMap and ACCEPT points at it (object or JSON string)', async () => {
    const objs = await render(base);
    const cm = byName(objs, 'ConfigMap', `${FULL}-accept`);
    const accept = JSON.parse(cm.data['accept.json']);
    const expected = (parseYaml(await readFile(join(chartDir, 'ci', 'default-values.yaml'), 'utf8')) as { accept: unknown }).accept;
    assert.deepEqual(accept, expected);
    const d = clients(objs)[0]!;
    const mount = (containerOf(d).volumeMounts as any[]).find((m) => m.name === 'accept');
    assert.equal(mount.readOnly, true);
    assert.equal(envValue(d, 'ACCEPT'), `${mount.mountPath}/accept.json`);
    const vol = (podSpecOf(d).volumes as any[]).find((v) => v.name === 'accept');
    assert.equal(vol.configMap.name, cm.metadata.name);

    const text = '{"private":[{"method":"GET","path":"/*","origin":"https://git.example.com"}],"public":[]}';
    const dir = await mkdtemp(join(tmpdir(), 'ha-broker-accept-'));
    await writeFile(join(dir, 'accept.json'), text);
    const asString = await render({ set: { brokerToken: TOKEN }, setFile: { accept: join(dir, 'accept.json') } });
    await rm(dir, { recursive: true, force: true });
    assert.equal(byName(asString, 'ConfigMap', `${FULL}-accept`).data['accept.json'].trim(), text);
  });

  test('proxy and CA values become HTTP_PROXY/HTTPS_PROXY/NO_PROXY and NODE_EXTRA_CA_CERTS', async () => {
    const objs = await render({ valuesFiles: ['ci/proxy-ca-values.yaml'] });
    const values = parseYaml(await readFile(join(chartDir, 'ci', 'proxy-ca-values.yaml'), 'utf8')) as Record<string, string>;
    const caSecret = byName(objs, 'Secret', `${FULL}-ca`);
    assert.equal(Buffer.from(caSecret.data['ca.pem'], 'base64').toString(), values.caCert);
    for (const d of clients(objs)) {
      assert.equal(envValue(d, 'HTTP_PROXY'), values.httpProxy);
      assert.equal(envValue(d, 'HTTPS_PROXY'), values.httpsProxy);
      assert.equal(envValue(d, 'NO_PROXY'), values.noProxy);
      const mount = (containerOf(d).volumeMounts as any[]).find((m) => m.name === 'ca');
      const vol = (podSpecOf(d).volumes as any[]).find((v) => v.name === 'ca');
      assert.equal(vol.secret.secretName, caSecret.metadata.name);
      assert.equal(envValue(d, 'NODE_EXTRA_CA_CERTS'), `${mount.mountPath}/${vol.secret.items[0].path}`);
    }
    const plain = clients(await render(base))[0]!;
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'NODE_EXTRA_CA_CERTS']) assert.equal(envValue(plain, name), undefined);
  });

  test('preflight checks, log level, drain grace and extraEnv (which replaces chart entries by name)', async () => {
    const objs = await render({
      ...base,
      set: {
        'preflightChecks.enabled': false,
        logLevel: 'debug',
        drainGraceSeconds: 40,
        'extraEnv[0].name': 'SCM_HOST',
        'extraEnv[0].value': 'git.example.internal',
        'extraEnv[1].name': 'LOG_LEVEL',
        'extraEnv[1].value': 'trace',
        'extraEnv[2].name': 'BROKER_CLIENT_LOCATION',
        'extraEnv[2].value': 'dc-1',
      },
    });
    const d = clients(objs)[0]!;
    assert.equal(envValue(d, 'PREFLIGHT_CHECKS_ENABLED'), 'false');
    assert.equal(envValue(d, 'LOG_LEVEL'), 'trace');
    assert.equal(envValue(d, 'BROKER_CLIENT_LOCATION'), 'dc-1');
    assert.equal(envValue(d, 'BROKER_CLIENT_DRAIN_GRACE_MS'), '40000');
    assert.equal(podSpecOf(d).terminationGracePeriodSeconds, 55, 'preStop 5 + drain 40 + 10');
    const names = envOf(d).map((e) => e.name);
    assert.equal(new Set(names).size, names.length, `duplicate env names: ${names.join(',')}`);
    assert.equal(envValue(clients(await render(base))[0]!, 'PREFLIGHT_CHECKS_ENABLED'), 'true');
  });

  test('checksum annotations change with the token and accept.json, so pods roll', async () => {
    const ann = async (set: Record<string, string | number | boolean>) =>
      clients(await render({ ...base, set }))[0]!.spec.template.metadata.annotations as Record<string, string>;
    const a = await ann({});
    const b = await ann({ brokerToken: '11111111-2222-4333-8444-555555555555' });
    const c = await ann({ 'accept.public[0].path': '/webhook/gitlab/*' });
    const pem = (body: string) => `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----`;
    const e = await ann({ caCert: pem('eA==') });
    const f = await ann({ caCert: pem('eQ==') });
    assert.ok(a['checksum/secret'] && a['checksum/accept']);
    assert.notEqual(a['checksum/secret'], b['checksum/secret']);
    assert.equal(a['checksum/accept'], b['checksum/accept']);
    assert.notEqual(a['checksum/accept'], c['checksum/accept']);
    assert.equal(a['checksum/secret'], c['checksum/secret']);
    assert.ok(e['checksum/ca'] && e['checksum/ca'] !== f['checksum/ca']);
  });
});

describe('names, labels and image', () => {
  test('names fit in 63 characters and stay distinct; app.kubernetes.io labels are set', async () => {
    const longRelease = 'r'.repeat(53); // helm's maximum release name length
    const objs = await render({ ...ha(4), release: longRelease });
    for (const o of objs) {
      assert.ok(o.metadata.name.length <= 63, `${o.kind} name too long: ${o.metadata.name}`);
      assert.match(o.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      for (const [k, v] of Object.entries(o.metadata.labels ?? {})) assert.ok(v.length <= 63, `label ${k}=${v} too long`);
      for (const k of ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/managed-by', 'helm.sh/chart']) {
        assert.ok(o.metadata.labels?.[k], `${o.kind}/${o.metadata.name} lacks label ${k}`);
      }
    }
    const names = (kind: string) => ofKind(objs, kind).map((o) => o.metadata.name);
    assert.equal(new Set(names('Deployment')).size, 4);
    assert.equal(new Set(names('Service')).size, 5);
    const over = await render({ ...ha(3), set: { ...ha(3).set, fullnameOverride: 'x'.repeat(70) } });
    for (const o of over) assert.ok(o.metadata.name.length <= 63, `${o.kind} name too long: ${o.metadata.name}`);
    assert.equal(new Set(names('Deployment')).size, 4);
  });

  test('image defaults to ghcr.io/ha-broker/ha-broker:<appVersion>; tag and digest override it', async () => {
    const chart = parseYaml(await readFile(join(chartDir, 'Chart.yaml'), 'utf8')) as { appVersion: string };
    const img = async (set: Record<string, string>) => containerOf(clients(await render({ ...base, set }))[0]!).image;
    assert.equal(await img({}), `ghcr.io/ha-broker/ha-broker:${chart.appVersion}`);
    assert.equal(await img({ 'image.tag': '1.2.3' }), 'ghcr.io/ha-broker/ha-broker:1.2.3');
    const digest = `sha256:${'b'.repeat(64)}`;
    assert.equal(await img({ 'image.digest': digest }), `ghcr.io/ha-broker/ha-broker@${digest}`);
  });
});

describe('secure and operable defaults', () => {
  test('non-root, read-only root filesystem, no capabilities, RuntimeDefault seccomp, no service-account token', async () => {
    const objs = await render(ha(2));
    const pods = [...clients(objs), ...ofKind(objs, 'Pod')];
    for (const p of pods) {
      const spec = podSpecOf(p);
      const c = containerOf(p);
      assert.equal(spec.automountServiceAccountToken, false);
      assert.equal(spec.enableServiceLinks, false, 'service links would inject BROKER_*-like variables');
      assert.equal(spec.securityContext.runAsNonRoot, true);
      assert.ok(spec.securityContext.runAsUser > 0);
      assert.equal(spec.securityContext.seccompProfile.type, 'RuntimeDefault');
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
      assert.equal(c.securityContext.runAsNonRoot, true);
      assert.ok((c.volumeMounts as any[]).some((m) => m.mountPath === '/tmp'), 'a writable /tmp is mounted');
      assert.ok(c.resources.requests.cpu && c.resources.requests.memory, 'resource requests are set');
    }
    const sa = byName(objs, 'ServiceAccount', FULL);
    assert.equal(sa.automountServiceAccountToken, false);
    for (const d of clients(objs)) assert.equal(podSpecOf(d).serviceAccountName, FULL);
  });

  test('liveness /livez and readiness /readyz on the client port', async () => {
    for (const d of clients(await render(ha(2)))) {
      const c = containerOf(d);
      assert.equal(c.livenessProbe.httpGet.path, '/livez');
      assert.equal(c.readinessProbe.httpGet.path, '/readyz');
      const port = c.ports.find((p: any) => p.name === c.livenessProbe.httpGet.port);
      assert.equal(String(port.containerPort), envValue(d, 'PORT'));
      assert.equal(c.readinessProbe.httpGet.port, c.livenessProbe.httpGet.port);
    }
  });

  test('terminationGracePeriodSeconds is above the preStop sleep plus the drain grace; a lower value is refused', async () => {
    const d = clients(await render(base))[0]!;
    const drainS = Number(envValue(d, 'BROKER_CLIENT_DRAIN_GRACE_MS')) / 1000;
    assert.equal(drainS, 25);
    assert.equal(podSpecOf(d).terminationGracePeriodSeconds, 40, 'preStop 5 + drain 25 + 10');
    assert.match(
      await renderError({ ...base, set: { terminationGracePeriodSeconds: 20 } }),
      /terminationGracePeriodSeconds \(20\) must be greater than drainGraceSeconds \(25\) plus preStopSleepSeconds \(5\)/,
    );
    assert.match(await renderError({ ...base, set: { terminationGracePeriodSeconds: 30 } }), /must be greater than drainGraceSeconds \(25\) plus preStopSleepSeconds \(5\)/);
    assert.equal(podSpecOf(clients(await render({ ...base, set: { terminationGracePeriodSeconds: 31 } }))[0]!).terminationGracePeriodSeconds, 31);
  });

  test('preStop: a terminating pod serves on for preStopSleepSeconds (node, the image has no sleep); 0 renders no hook', async () => {
    const c = containerOf(clients(await render(base))[0]!);
    assert.deepEqual(c.lifecycle, { preStop: { exec: { command: ['node', '-e', 'setTimeout(() => {}, 5000)'] } } });
    const c12 = containerOf(clients(await render({ ...base, set: { preStopSleepSeconds: 12 } }))[0]!);
    assert.deepEqual(c12.lifecycle.preStop.exec.command, ['node', '-e', 'setTimeout(() => {}, 12000)']);
    const d0 = clients(await render({ ...base, set: { preStopSleepSeconds: 0 } }))[0]!;
    assert.equal(containerOf(d0).lifecycle, undefined);
    assert.equal(podSpecOf(d0).terminationGracePeriodSeconds, 35);
    assert.match(await renderError({ ...base, set: { preStopSleepSeconds: -1 } }), /preStopSleepSeconds/);
  });

  test('rolling update keeps each replica up: a new pod starts before the old one stops', async () => {
    for (const d of clients(await render(ha(2)))) {
      assert.deepEqual(d.spec.strategy, { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } });
    }
  });

  test('soft anti-affinity and topology spread across nodes and zones by default; overridable', async () => {
    const d = clients(await render(ha(3)))[0]!;
    const spec = podSpecOf(d);
    const pref = spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution;
    assert.equal(pref[0].podAffinityTerm.topologyKey, 'kubernetes.io/hostname');
    const deps = clients(await render(ha(3)));
    for (const other of deps) assert.ok(selects(pref[0].podAffinityTerm.labelSelector.matchLabels, podLabelsOf(other)));
    const keys = (spec.topologySpreadConstraints as any[]).map((t) => t.topologyKey).sort();
    assert.deepEqual(keys, ['kubernetes.io/hostname', 'topology.kubernetes.io/zone']);
    for (const t of spec.topologySpreadConstraints) assert.equal(t.whenUnsatisfiable, 'ScheduleAnyway');

    const hard = podSpecOf(clients(await render(ha(2, { podAntiAffinity: 'hard' })))[0]!);
    assert.ok(hard.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution);
    const none = podSpecOf(clients(await render(ha(2, { podAntiAffinity: 'none', defaultTopologySpread: false })))[0]!);
    assert.equal(none.affinity, undefined);
    assert.equal(none.topologySpreadConstraints, undefined);
    const custom = podSpecOf(
      clients(
        await render(
          ha(2, {
            'affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key': 'pool',
            'affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator': 'Exists',
          }),
        ),
      )[0]!,
    );
    assert.equal(custom.affinity.podAntiAffinity, undefined, 'a given affinity replaces the preset');
    assert.ok(custom.affinity.nodeAffinity);
  });

  test('nodeSelector, tolerations, podAnnotations, podLabels, imagePullSecrets, priorityClassName reach the pods', async () => {
    const objs = await render(
      ha(2, {
        'nodeSelector.pool': 'brokers',
        'tolerations[0].key': 'dedicated',
        'tolerations[0].operator': 'Exists',
        'podAnnotations.example\\.com/a': 'b',
        'podLabels.team': 'platform',
        'imagePullSecrets[0].name': 'regcred',
        priorityClassName: 'critical',
      }),
    );
    for (const d of clients(objs)) {
      const spec = podSpecOf(d);
      assert.deepEqual(spec.nodeSelector, { pool: 'brokers' });
      assert.deepEqual(spec.tolerations, [{ key: 'dedicated', operator: 'Exists' }]);
      assert.equal(d.spec.template.metadata.annotations['example.com/a'], 'b');
      assert.equal(d.spec.template.metadata.labels.team, 'platform');
      assert.deepEqual(spec.imagePullSecrets, [{ name: 'regcred' }]);
      assert.equal(spec.priorityClassName, 'critical');
    }
  });

  test('PodDisruptionBudget only when more than one replica runs, and it can be turned off', async () => {
    assert.equal(ofKind(await render(base), 'PodDisruptionBudget').length, 0);
    assert.equal(ofKind(await render(ha(2)), 'PodDisruptionBudget').length, 1);
    assert.equal(ofKind(await render(ha(2, { 'podDisruptionBudget.enabled': false })), 'PodDisruptionBudget').length, 0);
  });

  test('ServiceMonitor scrapes every client once (the per-replica Services, not the shared one)', async () => {
    assert.equal(ofKind(await render(ha(3)), 'ServiceMonitor').length, 0, 'off by default');
    for (const [opts, expected] of [
      [ha(3, { 'serviceMonitor.enabled': true }), [`${FULL}-0`, `${FULL}-1`, `${FULL}-2`]],
      [{ ...base, set: { 'serviceMonitor.enabled': true } }, [SHARED]],
    ] as const) {
      const objs = await render(opts);
      const sm = byName(objs, 'ServiceMonitor', FULL);
      const scraped = ofKind(objs, 'Service').filter((s) => selects(sm.spec.selector.matchLabels, s.metadata.labels));
      assert.deepEqual(scraped.map((s) => s.metadata.name).sort(), [...expected]);
      assert.equal(sm.spec.endpoints[0].path, '/metrics');
      assert.equal(sm.spec.endpoints[0].port, 'http');
    }
  });

  test('helm test hook runs `broker preflight` with the client env and is selected by no Service', async () => {
    const objs = await render(ha(3));
    const pods = ofKind(objs, 'Pod');
    assert.equal(pods.length, 1);
    const pod = pods[0]!;
    assert.equal(pod.metadata.annotations?.['helm.sh/hook'], 'test');
    assert.deepEqual(containerOf(pod).args, ['preflight']);
    assert.equal(pod.spec.restartPolicy, 'Never');
    const client0 = byName(objs, 'Deployment', `${FULL}-0`);
    const strip = (o: K8sObject) => envOf(o).filter((e) => e.name !== 'BROKER_CLIENT_ID');
    assert.deepEqual(strip(pod), strip(client0));
    for (const s of ofKind(objs, 'Service')) assert.ok(!selects(s.spec.selector, podLabelsOf(pod)), `Service ${s.metadata.name} selects the test pod`);
    const pdb = ofKind(objs, 'PodDisruptionBudget')[0]!;
    assert.ok(!selects(pdb.spec.selector.matchLabels, podLabelsOf(pod)));
    for (const d of clients(objs)) assert.deepEqual(containerOf(d).args, ['client']);
  });
});

describe('GitHub App (githubApp)', () => {
  const app = { scmType: 'github-server-app', brokerToken: TOKEN, 'githubApp.appId': '424242', 'githubApp.clientId': 'Iv1.abc', 'githubApp.installationId': '31337', 'githubApp.api': 'ghe.example.com/api/v3', 'githubApp.privateKeySecret.name': 'gh-app-key' };

  test('the App variables in the env and the key mounted read-only from the existing Secret', async () => {
    const objs = await render({ setString: app });
    for (const d of clients(objs)) {
      assert.equal(envValue(d, 'GITHUB_APP_ID'), '424242');
      assert.equal(envValue(d, 'GITHUB_APP_CLIENT_ID'), 'Iv1.abc');
      assert.equal(envValue(d, 'GITHUB_APP_INSTALLATION_ID'), '31337');
      assert.equal(envValue(d, 'GITHUB_API'), 'ghe.example.com/api/v3');
      assert.equal(envValue(d, 'GITHUB_APP_PRIVATE_PEM_PATH'), '/etc/ha-broker/github-app/private-key.pem');
      const mount = (containerOf(d).volumeMounts as Array<Record<string, unknown>>).find((m) => m.name === 'github-app');
      assert.deepEqual(mount, { name: 'github-app', mountPath: '/etc/ha-broker/github-app', readOnly: true });
      const vol = (podSpecOf(d).volumes as Array<Record<string, any>>).find((v) => v.name === 'github-app');
      assert.deepEqual(vol?.secret, { secretName: 'gh-app-key', defaultMode: 0o400, items: [{ key: 'private-key.pem', path: 'private-key.pem' }] });
    }
  });

  test('an App without its key Secret, or without an ID: a render error naming the value', async () => {
    assert.match(await renderError({ setString: { ...app, 'githubApp.privateKeySecret.name': '' } }), /githubApp\.privateKeySecret\.name is required/);
    assert.match(await renderError({ setString: { ...app, 'githubApp.installationId': '' } }), /githubApp\.installationId is required/);
    assert.match(await renderError({ setString: { ...app, 'githubApp.appId': 'Iv1.abc' } }), /appId/);
  });

  test('no githubApp.appId: no App variable and no key volume', async () => {
    const objs = await render({ setString: { brokerToken: TOKEN, scmToken: 'ghp_x' } });
    for (const d of clients(objs)) {
      assert.equal(envValue(d, 'GITHUB_APP_ID'), undefined);
      assert.ok(!(podSpecOf(d).volumes as Array<{ name: string }>).some((v) => v.name === 'github-app'));
    }
  });
});

describe('GitHub App with scmType github-cloud-app', () => {
  test('githubApp.api defaults to api.github.com; the preset is the client\'s BROKER_SCM_TYPE', async () => {
    const objs = await render({ setString: { scmType: 'github-cloud-app', brokerToken: TOKEN, 'githubApp.appId': '424242', 'githubApp.clientId': 'Iv1.abc', 'githubApp.installationId': '31337', 'githubApp.privateKeySecret.name': 'gh-app-key' } });
    for (const d of clients(objs)) {
      assert.equal(envValue(d, 'GITHUB_API'), 'api.github.com');
      assert.equal(envValue(d, 'BROKER_SCM_TYPE'), 'github-cloud-app');
    }
  });
});
