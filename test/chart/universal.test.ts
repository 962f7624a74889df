// Universal Broker mode (issue 20): snyk-universal-broker-helm values files install unchanged and render
// what that chart renders (its Secrets by name and key, the env it sets), on this chart's objects.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { byName, containerOf, envOf, envValue, ofKind, podSpecOf, render, renderError, type K8sObject, type RenderOptions } from './helm.js';

const FIXTURE = 'ci/snyk-universal-fixture-values.yaml';
const clients = (objs: K8sObject[]) => ofKind(objs, 'Deployment');
const secretData = (objs: K8sObject[], name: string): Record<string, string> =>
  Object.fromEntries(Object.entries(byName(objs, 'Secret', name).data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
const envFrom = (d: K8sObject) => ((containerOf(d).envFrom ?? []) as { secretRef?: { name: string }; configMapRef?: { name: string } }[]);
const fixture = (more: RenderOptions = {}) => render({ ...more, valuesFiles: [FIXTURE, ...(more.valuesFiles ?? [])] });

describe("snyk-universal-broker-helm's own fixture, unchanged", () => {
  test('renders the Universal Broker client: platform and credential Secrets named as Snyk names them, loaded with envFrom', async () => {
    const objs = await fixture();
    assert.deepEqual(secretData(objs, 'rel-platform-secret'), {
      DEPLOYMENT_ID: '8b338a3b-424a-497e-836e-5e0f9486605a',
      CLIENT_ID: '8b338a3b-424a-497e-836e-5e0f9486605a',
      CLIENT_SECRET: 'super-secret-secret',
    });
    assert.deepEqual(secretData(objs, 'rel-creds-secret'), { mygithubtoken: '8b338a3b-424a-497e-836e-5e0f9486605a' });
    // No classic token Secret, no preflight test pod (it checks the classic client).
    assert.equal(ofKind(objs, 'Secret').length, 2);
    assert.equal(ofKind(objs, 'Pod').length, 0);
    // High availability is on by default, as in Snyk's chart: 2 clients.
    const ds = clients(objs);
    assert.equal(ds.length, 2);
    const ids = new Set<string>();
    for (const d of ds) {
      assert.deepEqual(envFrom(d), [{ secretRef: { name: 'rel-platform-secret' } }, { secretRef: { name: 'rel-creds-secret' } }]);
      assert.equal(envValue(d, 'UNIVERSAL_BROKER_ENABLED'), 'true');
      assert.equal(envValue(d, 'BROKER_SERVER_URL'), 'https://broker.snyk.io');
      assert.equal(envValue(d, 'BROKER_DISPATCHER_BASE_URL'), 'https://api.snyk.io');
      assert.equal(envValue(d, 'BROKER_CLIENT_URL'), 'http://brokerclient');
      assert.equal(envValue(d, 'BROKER_HA_MODE_ENABLED'), 'true');
      assert.equal(envValue(d, 'PORT'), '8000');
      ids.add(envValue(d, 'BROKER_CLIENT_ID')!);
      // Secrets never as plain env; no classic variables.
      for (const name of ['BROKER_TOKEN', 'BROKER_SCM_TYPE', 'ACCEPT', 'DEPLOYMENT_ID', 'CLIENT_SECRET', 'mygithubtoken']) {
        assert.ok(!envOf(d).some((e) => e.name === name), `${d.metadata.name} sets ${name} in env`);
      }
      // The client's own defaults turn the accept switches on in this mode: none is set.
      assert.deepEqual(envOf(d).filter((e) => e.name.startsWith('ACCEPT_')), []);
      assert.match(d.spec.template.metadata.annotations['checksum/universal'], /^[0-9a-f]{64}$/);
    }
    assert.equal(ids.size, 2, 'each replica has its own stable client id');
    // The shared Service has snyk-universal-broker-helm's name.
    assert.ok(ofKind(objs, 'Service').some((s) => s.metadata.name === 'rel-snyk-universal-broker'));
  });

  test('snyk-universal-broker-helm\'s other fixture (dev endpoints, upper-case ids, HA off) installs unchanged', async () => {
    // tests/fixtures/universal_broker_default_values.yaml, written out here.
    const objs = await render({
      set: {
        brokerClientUrl: 'http://brokerclient',
        brokerServerUrl: 'https://broker.dev.snyk.io',
        'preflightChecks.enabled': true,
        'highAvailabilityMode.enabled': false,
        brokerDispatcherUrl: 'https://api.dev.snyk.io',
        deploymentId: '8B338A3B-424A-497E-836E-5E0F9486605A',
        clientId: '8B338A3B-424A-497E-836E-5E0F9486605A',
        clientSecret: '8B338A3B-424A-497E-836E-5E0F9486605A',
        'credentialReferences.mygithubtoken': '8B338A3B-424A-497E-836E-5E0F9486605A',
      },
    });
    const [d, ...more] = clients(objs);
    assert.equal(more.length, 0);
    assert.equal(envValue(d!, 'BROKER_SERVER_URL'), 'https://broker.dev.snyk.io');
    assert.equal(envValue(d!, 'BROKER_DISPATCHER_BASE_URL'), 'https://api.dev.snyk.io');
    assert.equal(envValue(d!, 'BROKER_HA_MODE_ENABLED'), 'false');
  });

  test('the file with every snyk-universal-broker-helm value at its defaults installs unchanged', async () => {
    const objs = await render({ valuesFiles: ['ci/snyk-universal-all-keys-values.yaml'] });
    const ds = clients(objs);
    assert.equal(ds.length, 2);
    const c = containerOf(ds[0]!);
    assert.match(c.image, /^ghcr\.io\/ha-broker\/ha-broker:/, "Snyk's image is replaced by this chart's");
    // {enabled, path, config} probes: timings merged, the path stays ours.
    assert.deepEqual(c.livenessProbe, { httpGet: { path: '/livez', port: 'http' }, initialDelaySeconds: 3, periodSeconds: 10, timeoutSeconds: 1, failureThreshold: 3 });
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    // podSecurityContext.enabled is Snyk's switch, not a field of the pod.
    assert.equal(podSpecOf(ds[0]!).securityContext.enabled, undefined);
    assert.equal(podSpecOf(ds[0]!).securityContext.runAsNonRoot, true);
    // All the accept switches given, as given.
    assert.deepEqual(
      Object.fromEntries(envOf(ds[0]!).filter((e) => e.name.startsWith('ACCEPT_')).map((e) => [e.name, e.value])),
      { ACCEPT_APPRISK: 'true', ACCEPT_CODE: 'true', ACCEPT_LARGE_MANIFESTS: 'true', ACCEPT_CUSTOM_PR_TEMPLATES: 'true', ACCEPT_IAC: 'tf,yaml,yml,json,tpl' },
    );
  });
});

describe('Universal Broker values', () => {
  test('the mode: platform credentials or universalBroker.enabled pick it; false keeps the classic client', async () => {
    const viaSecret = await render({ set: { 'platformAuthSecret.name': 'platform' } });
    assert.equal(envValue(clients(viaSecret)[0]!, 'UNIVERSAL_BROKER_ENABLED'), 'true');
    assert.deepEqual(envFrom(clients(viaSecret)[0]!), [{ secretRef: { name: 'platform' } }]);
    assert.equal(ofKind(viaSecret, 'Secret').length, 0);
    const classic = await render({ valuesFiles: ['ci/snyk-github-com-values.yaml'] });
    assert.equal(envValue(clients(classic)[0]!, 'UNIVERSAL_BROKER_ENABLED'), undefined);
    const forcedOff = await renderError({ valuesFiles: [FIXTURE], set: { 'universalBroker.enabled': false } });
    assert.match(forcedOff, /brokerToken is required|scmType github-com needs scmToken/, 'the classic client, which needs its token');
    const missing = await renderError({ set: { 'universalBroker.enabled': true, deploymentId: '8b338a3b-424a-497e-836e-5e0f9486605a' } });
    assert.match(missing, /Universal Broker mode needs clientId, clientSecret/);
  });

  test('classic-only values fail in Universal Broker mode, naming them', async () => {
    const err = await renderError({ valuesFiles: [FIXTURE], set: { brokerToken: 'x', scmToken: 'y' } });
    assert.match(err, /brokerToken, scmToken belong to the classic client/);
  });

  test('region: snyk-universal-broker-helm\'s URL fragments', async () => {
    for (const [region, server, api] of [
      ['', 'https://broker.snyk.io', 'https://api.snyk.io'],
      ['us', 'https://broker.us.snyk.io', 'https://api.us.snyk.io'],
      ['us2', 'https://broker.us.snyk.io', 'https://api.us.snyk.io'],
      ['eu', 'https://broker.eu.snyk.io', 'https://api.eu.snyk.io'],
      ['au', 'https://broker.au.snyk.io', 'https://api.au.snyk.io'],
      ['gov', 'https://broker.gov.snyk.io', 'https://api.gov.snyk.io'],
      ['xyz.my', 'https://broker.xyz.my.snyk.io', 'https://api.xyz.my.snyk.io'],
    ] as const) {
      const d = clients(await fixture({ setString: { region } }))[0]!;
      assert.equal(envValue(d, 'BROKER_SERVER_URL'), server, region);
      assert.equal(envValue(d, 'BROKER_DISPATCHER_BASE_URL'), api, region);
    }
  });

  test('high availability: on with 2 by default; replicaCount or highAvailabilityMode.replicaCount; off runs one; 5 fails', async () => {
    assert.equal(clients(await fixture({ set: { replicaCount: 4 } })).length, 4);
    assert.equal(clients(await fixture({ set: { 'highAvailabilityMode.replicaCount': 3, replicaCount: 4 } })).length, 3);
    const off = clients(await fixture({ set: { 'highAvailabilityMode.enabled': false } }));
    assert.equal(off.length, 1);
    assert.equal(envValue(off[0]!, 'BROKER_HA_MODE_ENABLED'), 'false');
    assert.match(await renderError({ valuesFiles: [FIXTURE], set: { 'highAvailabilityMode.replicaCount': 5 } }), /replicaCount|maximum/);
  });

  test('credentialReferences: keys must be env names or .pem files, as in Snyk\'s chart; .pem keys are mounted as files', async () => {
    const err = await renderError({ valuesFiles: [FIXTURE], set: { 'credentialReferences.9_THIS_IS_ILLEGAL': 'x', 'credentialReferences.THIS_IS_OK': 'y' } });
    assert.match(err, /9_THIS_IS_ILLEGAL|credentialReferences/);
    const objs = await render({ valuesFiles: ['ci/universal-values.yaml'] });
    assert.deepEqual(Object.keys(secretData(objs, 'rel-creds-secret')).sort(), ['MY_GITHUB_TOKEN', 'MY_GITLAB_TOKEN', 'github_app_key.pem']);
    const d = clients(objs)[0]!;
    assert.deepEqual(
      (containerOf(d).volumeMounts as Record<string, unknown>[]).filter((m) => m.name === 'credential-pem'),
      [{ name: 'credential-pem', mountPath: '/home/node/github_app_key.pem', subPath: 'github_app_key.pem', readOnly: true }],
    );
    const vol = (podSpecOf(d).volumes as Record<string, any>[]).find((v) => v.name === 'credential-pem')!;
    assert.deepEqual(vol.secret, { secretName: 'rel-creds-secret', defaultMode: 0o400, items: [{ key: 'github_app_key.pem', path: 'github_app_key.pem' }] });
    const moved = clients(await render({ valuesFiles: ['ci/universal-values.yaml'], set: { privateKeyMountPath: '/etc/gh/' } }))[0]!;
    assert.ok((containerOf(moved).volumeMounts as { mountPath: string }[]).some((m) => m.mountPath === '/etc/gh/github_app_key.pem'));
  });

  test('credentialReferencesSecret: an existing Secret, its .pem keys from pemKeys; one Secret for both platform and credentials', async () => {
    const objs = await fixture({ set: { 'credentialReferencesSecret.name': 'creds', 'credentialReferencesSecret.pemKeys[0]': 'app.pem' } });
    assert.throws(() => byName(objs, 'Secret', 'rel-creds-secret'));
    const d = clients(objs)[0]!;
    assert.deepEqual(envFrom(d), [{ secretRef: { name: 'rel-platform-secret' } }, { secretRef: { name: 'creds' } }]);
    assert.ok((containerOf(d).volumeMounts as { mountPath: string }[]).some((m) => m.mountPath === '/home/node/app.pem'));
    const one = await render({ set: { 'platformAuthSecret.name': 'common', 'credentialReferencesSecret.name': 'common' } });
    assert.deepEqual(envFrom(clients(one)[0]!), [{ secretRef: { name: 'common' } }]);
    assert.equal(ofKind(one, 'Secret').length, 0);
  });

  test('a changed platform credential or credential reference rolls the pods', async () => {
    const sum = async (set: Record<string, string>) => clients(await fixture({ set }))[0]!.spec.template.metadata.annotations['checksum/universal'];
    const base = await sum({});
    assert.notEqual(await sum({ clientSecret: 'rotated' }), base);
    assert.notEqual(await sum({ 'credentialReferences.mygithubtoken': 'rotated' }), base);
    assert.equal(await sum({}), base);
  });

  test('accept switches: given ones are passed as given (false too); acceptIaC "" turns IaC off; unknown extensions fail', async () => {
    const d = clients(await fixture({ set: { acceptCode: false, acceptAppRisk: true }, setString: { acceptIaC: '' } }))[0]!;
    assert.equal(envValue(d, 'ACCEPT_CODE'), 'false');
    assert.equal(envValue(d, 'ACCEPT_APPRISK'), 'true');
    assert.equal(envValue(d, 'ACCEPT_IAC'), 'false');
    assert.equal(envValue(clients(await fixture({ setString: { acceptIaC: 'tf\\, yaml' } }))[0]!, 'ACCEPT_IAC'), 'tf,yaml');
    assert.match(await renderError({ valuesFiles: [FIXTURE], setString: { acceptIaC: 'tf\\,exe' } }), /Unrecognised extension for ACCEPT_IAC: exe/);
  });

  test('networking and trust: proxies (and proxySecret), CA Secret, disableAllCertificateTrust, insecureDownstream, IPv6 switch', async () => {
    const objs = await render({ valuesFiles: ['ci/universal-ha-values.yaml'] });
    const ds = clients(objs);
    assert.equal(ds.length, 3);
    const d = ds[0]!;
    assert.equal(envValue(d, 'HTTPS_PROXY'), 'http://proxy.corp.example.com:3128');
    assert.equal(envValue(d, 'CA_CERT'), '/etc/ha-broker/ca/ca.pem');
    assert.equal(envValue(d, 'INSECURE_DOWNSTREAM'), 'true');
    assert.equal(envValue(d, 'IPV6_CONNECTIVITY_CHECK_ENABLED'), 'false');
    assert.deepEqual(envFrom(d), [
      { secretRef: { name: 'snyk-broker-platform' } },
      { secretRef: { name: 'snyk-broker-credentials' } },
      { secretRef: { name: 'rel-ha-broker-commit-signing' } },
    ]);
    const shared = byName(objs, 'Service', 'rel-snyk-universal-broker');
    assert.equal(shared.spec.type, 'LoadBalancer');
    assert.deepEqual(shared.spec.loadBalancerSourceRanges, ['10.0.0.0/8']);
    const trust = clients(await fixture({ set: { disableAllCertificateTrust: true, 'caCertSecret.name': 'corp-ca', 'proxySecret.name': 'px', 'proxySecret.httpsProxyKey': 'https' }, setString: { httpsProxy: 'http://ignored:1' } }))[0]!;
    assert.equal(envValue(trust, 'NODE_TLS_REJECT_UNAUTHORIZED'), '0');
    assert.deepEqual(envOf(trust).find((e) => e.name === 'HTTPS_PROXY')!.valueFrom, { secretKeyRef: { name: 'px', key: 'https' } });
    const ca = (podSpecOf(trust).volumes as Record<string, any>[]).find((v) => v.name === 'ca')!;
    assert.deepEqual(ca.secret.items, [{ key: 'ca.pem', path: 'ca.pem' }]);
    assert.equal(ca.secret.secretName, 'corp-ca');
  });

  test("snyk-universal-broker-helm's ingress: main host, extra hosts, TLS from a cert-manager issuer", async () => {
    const objs = await render({ valuesFiles: ['ci/universal-values.yaml'], set: { 'ingress.extraHosts[0].name': 'broker2.corp.example.com', 'ingress.extraHosts[0].path': '/b', 'ingress.extraHosts[0].pathType': 'Prefix' } });
    const ing = byName(objs, 'Ingress', 'rel-ha-broker');
    assert.equal(ing.spec.ingressClassName, 'nginx');
    assert.deepEqual(ing.spec.tls, [{ hosts: ['broker.corp.example.com'], secretName: 'broker.corp.example.com-tls' }]);
    const backend = { service: { name: 'rel-snyk-universal-broker', port: { number: 8000 } } };
    assert.deepEqual(ing.spec.rules, [
      { host: 'broker.corp.example.com', http: { paths: [{ path: '/', pathType: 'ImplementationSpecific', backend }] } },
      { host: 'broker2.corp.example.com', http: { paths: [{ path: '/b', pathType: 'Prefix', backend }] } },
    ]);
    assert.match(await renderError({ valuesFiles: ['ci/universal-values.yaml'], set: { 'brokerIngress.enabled': true } }), /brokerIngress or ingress/);
  });

  test('refused snyk-universal-broker-helm values fail with their reason; ignored ones change nothing', async () => {
    assert.match(await renderError({ valuesFiles: [FIXTURE], set: { 'sidecars[0].name': 'x', 'sidecars[0].image': 'busybox' } }), /sidecars .*fails the install/);
    assert.match(await renderError({ valuesFiles: [FIXTURE], set: { 'httpRoute.enabled': true } }), /httpRoute\.enabled/);
    const plain = await fixture();
    const ignored = await fixture({ set: { 'workload.kind': 'deployment', logVerbose: true, 'caCertMount.path': '/x', 'image.registry': 'r.example.com', 'containerSecurityContext.runAsUser': 1000 } });
    assert.deepEqual(ignored, plain);
  });
});
