
(function(){
"use strict";
var D=JSON.parse(document.getElementById('data').textContent);
var N=D.nodes,B=D.blocks,E=D.edges,G={};D.groups.forEach(function(g){G[g[0]]=g;});
var OPN={split_with_sizes:'split',tensor_split:'split',adaptive_avg_pool2d:'avgpool',adaptive_max_pool2d:'maxpool',avg_pool2d:'avgpool',max_pool2d:'maxpool',scaled_dot_product_attention:'attention',pixel_shuffle:'pixshuffle',pixel_unshuffle:'pixunshuffle',upsample_nearest2d:'upsample',upsample_bilinear2d:'upsample',upsample_bicubic2d:'upsample'};
var NW=134,OW=86,IOW=96,NH=44,BW=170,BH=56,GX=34,GY=16,PAD=10,HEAD=18;
var open={};D.expanded.forEach(function(b){open[b]=1;});open[0]=1;
var svg=document.getElementById('view'),scene=document.getElementById('scene'),tip=document.getElementById('tip');
var sel=null,L=null;
function esc(s){return String(s).replace(/[&<>"]/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c];});}
function cut(s,n){s=String(s);if(s.length<=n)return s;var p=s.split('.');while(p.length>1&&p.join('.').length>n-1)p.shift();
  s=p.join('.');return '\u2026'+(s.length<=n-1?s:s.slice(s.length-n+1));}
function col(g){return g==null||!G[g]?'#ffffff':G[g][6];}
function kind(g){return g==null||!G[g]?'none':G[g][1];}
// the block that is drawn for node/block x (its outermost closed ancestor, or itself)
function parentOf(it){return it[0]==='n'?N[it[1]][3]:B[it[1]][2];}
function rep(n){var r=['n',n],b=N[n][3];while(b>0){if(!open[b])r=['b',b];b=B[b][2];}return r;}
function info(it){var b=B[parentOf(it)];for(var k=0;k<b[3].length;k++){var x=b[3][k];if(x[0]===it[0]&&x[1]===it[1])return x;}}
function nLayers(b){var m=0;B[b][3].forEach(function(x){if(x[2]+1>m)m=x[2]+1;});return m;}
function arcH(span){return 12+8*Math.min(span,7);}
// is the edge drawn straight (nothing in between) or as an arc over its lowest common block?
function classify(e,ru,rv){
  var lca=e[2],a=ru,b=rv,ok=true,ia,ib;
  while(parentOf(a)!==lca){var x=info(a);if(x[2]!==nLayers(parentOf(a))-1)ok=false;a=['b',parentOf(a)];}
  while(parentOf(b)!==lca){var y=info(b);if(y[2]!==0)ok=false;b=['b',parentOf(b)];}
  ia=info(a);ib=info(b);var span=ib[2]-ia[2];
  return {direct:ok&&span===1,span:Math.max(span,1),lca:lca};
}
function layout(){
  var drawn={},links=[],room={};
  E.forEach(function(e){
    var ru=rep(e[0]),rv=rep(e[1]);var k=ru.join()+'>'+rv.join();
    if(ru[0]===rv[0]&&ru[1]===rv[1]||drawn[k])return;drawn[k]=1;
    var c=classify(e,ru,rv);c.u=ru;c.v=rv;c.g=N[e[0]][4][0];links.push(c);
    if(!c.direct)room[c.lca]=Math.max(room[c.lca]||0,arcH(c.span)+6);
  });
  var size={},pos={},frames=[];
  function measure(it){
    var key=it.join();if(size[key])return size[key];var s;
    if(it[0]==='n')s={w:nodeW(it[1]),h:NH,py:NH/2};
    else if(!open[it[1]])s={w:BW,h:BH,py:BH/2};
    else{
      var b=it[1],items=B[b][3],cols=[],colW=[],base=0;
      items.forEach(function(x){var m=measure([x[0],x[1]]);(cols[x[2]]=cols[x[2]]||[]).push(x);colW[x[2]]=Math.max(colW[x[2]]||0,m.w);
        if(x[3]===0)base=Math.max(base,m.py);});
      var top=(b>0?HEAD:0)+PAD+(room[b]||0),W=PAD,H=0,place=[];
      for(var l=0;l<colW.length;l++){
        if(!cols[l]){continue;}
        cols[l].sort(function(p,q){return p[3]-q[3];});
        var y=null;
        cols[l].forEach(function(x){var m=measure([x[0],x[1]]);var yy=(y===null)?top+base-m.py:y;
          place.push([x,W+(colW[l]-m.w)/2,yy]);y=yy+m.h+GY;H=Math.max(H,yy+m.h);});
        W+=colW[l]+GX;
      }
      W=W-GX+PAD;H+=PAD;W=Math.max(W,b>0?String(B[b][0]).length*6.5+60:0);
      s={w:W,h:H,py:top+base,place:place,top:top};
    }
    size[key]=s;return s;
  }
  function put(it,x,y,depth){
    var s=measure(it);pos[it.join()]={x:x,y:y,w:s.w,h:s.h,py:s.py};
    if(it[0]==='b'&&open[it[1]]){
      frames.push({b:it[1],x:x,y:y,w:s.w,h:s.h,d:depth,top:y+s.top});
      s.place.forEach(function(p){put([p[0][0],p[0][1]],x+p[1],y+p[2],depth+1);});
    }
  }
  put(['b',0],0,0,0);
  var root=measure(['b',0]);
  return {pos:pos,frames:frames,links:links,W:root.w,H:root.h};
}
function nodeW(i){var k=N[i][2];return k==='l'?NW:(k==='p'?OW:IOW);}
function nodeSvg(i,p){
  var n=N[i],g=n[4][0],k=kind(g),c=col(g),s='',cls='nd k-'+k;
  var io=n[2]==='i'||n[2]==='o',rx=io?p.h/2:(n[2]==='p'?p.h/2.6:5);
  s+='<g class="'+cls+'" data-n="'+i+'" data-o="'+n[4].join(' ')+'" data-g="'+n[4].concat(n[5]).join(' ')+'" transform="translate('+p.x+','+p.y+')">';
  var fill=k==='fixed'?'url(#hatch)':(k==='none'?'#fff':c),stroke=k==='coupled'?'#111':(k==='fixed'?'#777':'#444');
  var sw=k==='coupled'?2.6:1.1,dash=k==='fixed'?' stroke-dasharray="5 3"':'';
  s+='<rect class="bg" width="'+p.w+'" height="'+p.h+'" rx="'+rx+'" fill="'+fill+'" stroke="'+stroke+'" stroke-width="'+sw+'"'+dash+'/>';
  if(k==='coupled')s+='<rect width="'+p.w+'" height="'+p.h+'" rx="'+rx+'" fill="url(#stripes)" pointer-events="none"/>'
    +'<circle cx="'+(p.w-9)+'" cy="10" r="6" fill="#111"/><text x="'+(p.w-9)+'" y="13.2" font-size="8.5" font-weight="700" fill="#fff" text-anchor="middle">C</text>';
  var ig=n[5].length?n[5][0]:null,x0=io?14:(n[2]==='p'?10:13);
  if(ig!==null&&!io)s+='<rect x="1" y="'+(n[2]==='p'?8:1)+'" width="7" height="'+(n[2]==='p'?p.h-16:p.h-2)+'" fill="'+(kind(ig)==='fixed'?'#9e9e9e':col(ig))+'" stroke="#444" stroke-width=".6"/>';
  var label,t2;
  if(n[2]==='l'){label=cut(n[0],k==='coupled'?17:19);t2=n[1];}
  else if(n[2]==='p'){label=cut(OPN[n[1]]||n[1],k==='coupled'?9:11);t2='';}
  else if(n[2]==='i'){label='input';t2=n[0];}
  else {label='output';t2='';}
  s+='<text class="t1" x="'+x0+'" y="17">'+esc(label)+'</text>';
  if(t2)s+='<text class="t2" x="'+x0+'" y="34">'+esc(cut(t2,12))+'</text>';
  var ch=n[6]==null?'':(D.keep&&n[7]!=null?n[7]+'/'+n[6]:String(n[6]));
  var gl=(g==null?'':'g'+g)+(ch&&g!=null?' \u00B7 ':'')+ch;
  s+='<text class="ch" x="'+(p.w-7)+'" y="34" text-anchor="end">'+esc(gl)+'</text>';
  if(D.keep&&n[7]!=null&&n[6]){var f=n[7]/n[6],bw=p.w-x0-10;s+='<rect x="'+x0+'" y="'+(p.h-7)+'" width="'+(bw*f)+'" height="3" fill="#222"/><rect x="'+(x0+bw*f)+'" y="'+(p.h-7)+'" width="'+(bw*(1-f))+'" height="3" fill="#fff" stroke="#222" stroke-width=".5"/>';}
  return s+'</g>';
}
function blockSvg(b,p){
  var bl=B[b],s='<g class="nd cb" data-b="'+b+'" data-g="'+bl[5].join(' ')+'" transform="translate('+p.x+','+p.y+')">';
  s+='<rect class="card" x="6" y="6" width="'+(p.w-6)+'" height="'+(p.h-6)+'" rx="5"/>';
  s+='<rect class="card" width="'+(p.w-6)+'" height="'+(p.h-6)+'" rx="5"/>';
  s+='<text class="t1" x="10" y="16">\u25B8 '+esc(cut(bl[0],23))+'</text>';
  s+='<text class="t2" x="10" y="30">'+esc(cut(bl[1],16))+' \u00B7 '+bl[4]+' nodes</text>';
  var gs=bl[5],nchip=Math.min(gs.length,7);
  for(var k=0;k<nchip;k++){var g=gs[k];s+='<rect x="'+(10+k*12)+'" y="36" width="10" height="10" fill="'+(kind(g)==='fixed'?'url(#hatch)':col(g))+'" stroke="'+(kind(g)==='coupled'?'#111':'#666')+'" stroke-width="'+(kind(g)==='coupled'?2:.6)+'"/>';}
  if(gs.length>7)s+='<text class="t2" x="'+(12+12*7)+'" y="45">+'+(gs.length-7)+'</text>';
  var o=N[bl[6]],ch=o[6]==null?'':(D.keep&&o[7]!=null?o[7]+'/'+o[6]:o[6]);
  s+='<text class="ch" x="'+(p.w-12)+'" y="45" text-anchor="end">'+esc(ch)+'</text>';
  return s+'</g>';
}
function edgeSvg(c){
  var a=L.pos[c.u.join()],b=L.pos[c.v.join()];if(!a||!b)return '';
  var sx=a.x+a.w-(c.u[0]==='b'?6:0),sy=a.y+a.py,tx=b.x,ty=b.y+b.py,d,cl=c.g==null?'#888':(kind(c.g)==='fixed'?'#888':col(c.g));
  if(kind(c.g)!=='fixed'&&c.g!=null)cl=shade(cl);
  if(c.direct||tx-sx<80){var mx=(sx+tx)/2;d='M'+sx+','+sy+'C'+mx+','+sy+' '+mx+','+ty+' '+tx+','+ty;}
  else{var f=L.frame[c.lca],yt=(f?f.top:0)-arcH(c.span);
    d='M'+sx+','+sy+'C'+(sx+28)+','+sy+' '+(sx+6)+','+yt+' '+(sx+40)+','+yt+'L'+(tx-40)+','+yt+'C'+(tx-6)+','+yt+' '+(tx-28)+','+ty+' '+tx+','+ty;}
  return '<path class="ed" d="'+d+'" stroke="'+cl+'" marker-end="url(#arr)"/>';
}
function shade(h){var r=parseInt(h.substr(1,2),16),g=parseInt(h.substr(3,2),16),b=parseInt(h.substr(5,2),16);
  return 'rgb('+Math.round(r*.7)+','+Math.round(g*.7)+','+Math.round(b*.7)+')';}
function render(){
  L=layout();L.frame={};
  var out=[];
  L.frames.forEach(function(f){L.frame[f.b]=f;if(f.b===0)return;
    out.push('<g class="bx d'+(f.d%2)+'" data-fb="'+f.b+'"><rect class="fr" x="'+f.x+'" y="'+f.y+'" width="'+f.w+'" height="'+f.h+'" rx="8"/>'
      +'<text class="hd" data-hb="'+f.b+'" x="'+(f.x+8)+'" y="'+(f.y+14)+'">\u25BE '+esc(B[f.b][0])+'  ('+esc(B[f.b][1])+')</text></g>');});
  L.links.forEach(function(c){out.push(edgeSvg(c));});
  Object.keys(L.pos).forEach(function(k){var p=L.pos[k],it=k.split(',');var i=+it[1];
    if(it[0]==='n')out.push(nodeSvg(i,p));else if(!open[i])out.push(blockSvg(i,p));});
  scene.innerHTML=out.join('');
  applySel();
}
// ---- selection
function membersOf(g){var out={},inn={},blk={};
  N.forEach(function(n,i){var o=n[4].indexOf(g)>=0,c=n[5].indexOf(g)>=0;if(o)out[i]=1;else if(c)inn[i]=1;
    if(o||c){var b=n[3];while(b>0){blk[b]=1;b=B[b][2];}}});return {out:out,inn:inn,blk:blk};}
function applySel(){
  var els=scene.querySelectorAll('.nd'),m=sel===null?null:membersOf(sel);
  for(var k=0;k<els.length;k++){var e=els[k];e.classList.remove('hl','hlin','dim');if(!m)continue;
    var n=e.getAttribute('data-n'),b=e.getAttribute('data-b');
    if(n!==null){if(m.out[n])e.classList.add('hl');else if(m.inn[n])e.classList.add('hlin');else e.classList.add('dim');}
    else if(b!==null){if(m.blk[b])e.classList.add('hl');else e.classList.add('dim');}}
  var eds=scene.querySelectorAll('.ed');for(k=0;k<eds.length;k++)eds[k].classList.toggle('dim',!!m);
  var rows=document.querySelectorAll('#groups tr.sel');for(k=0;k<rows.length;k++)rows[k].classList.remove('sel');
  if(sel!==null){var r=document.getElementById('grow'+sel);if(r)r.classList.add('sel');}
}
function select(g){sel=(g===undefined||g===null||sel===g)?null:g;applySel();}
window.fxSelect=function(g){sel=null;select(g);};
// ---- tooltip
function names(list,total,n){var s=list.slice(0,n).map(function(x){return x||'<root>';}).join(', ');
  if(total>n)s+=', \u2026 (+'+(total-n)+' more)';return s;}
function groupLine(g,role){var x=G[g];if(!x)return '';
  var s='<div class="gl"><span class="sw k-'+x[1]+'" style="background-color:'+x[6]+'"></span> <b>g'+g+'</b> '+role+' \u00B7 '+x[1]+' \u00B7 '+x[2]+'\u00D7'+x[3]+' ch'+(x[5]?' \u00B7 kept '+x[5]:'');
  s+='<br>producers: '+esc(names(x[7],x[8],8))+'<br>consumers: '+esc(names(x[9],x[10],6));
  if(x[11])s+='<br><i>fixed: '+esc(x[11])+'</i>';return s+'</div>';}
function tipFor(e){
  var n=e.getAttribute('data-n'),b=e.getAttribute('data-b'),s;
  if(n!==null){n=N[+n];s='<b>'+esc(n[2]==='l'?n[0]:n[8])+'</b> \u2014 '+esc(n[1])+(n[9]&&n[2]!=='l'?' in '+esc(n[9]):'')
    +(n[6]!=null?' \u00B7 '+(D.keep&&n[7]!=null?n[7]+'/':'')+n[6]+' ch':'');
    if(n[2]==='l'&&n[8])s+='<br><span style="color:#666">FX node '+esc(n[8])+'</span>';
    n[4].forEach(function(g,k){s+=groupLine(g,k?'(output, other dim)':'output');});
    n[5].forEach(function(g){s+=groupLine(g,'input');});
    if(!n[4].length&&!n[5].length)s+='<div class="gl">in no group (its channels are not prunable)</div>';}
  else{b=B[+b];s='<b>'+esc(b[0])+'</b> \u2014 '+esc(b[1])+' \u00B7 '+b[4]+' nodes, '+b[5].length+' groups<br>click to expand';}
  return s;}
// ---- pan / zoom on the viewBox
var vb=null,drag=null,moved=false;
function setVB(){svg.setAttribute('viewBox',vb.x+' '+vb.y+' '+vb.w+' '+vb.h);}
function relayout(){render();svg.style.height='';var r=svg.getBoundingClientRect();vb.h=r.height*vb.w/r.width;setVB();}
function fit(all){svg.style.height='';var r=svg.getBoundingClientRect(),W=L.W+40,H=L.H+40,s=Math.min(r.width/W,r.height/H,1.3);
  if(!all&&s<0.55){s=Math.max(0.55,Math.min(0.8,r.height/H));}
  var h=Math.max(260,Math.min(r.height,H*s+10));if(h<r.height){svg.style.height=h+'px';r=svg.getBoundingClientRect();}
  vb={x:-20,y:-20,w:r.width/s,h:r.height/s};if(s*W<r.width){vb.x=-20-(r.width/s-W)/2;}setVB();}
svg.addEventListener('wheel',function(ev){ev.preventDefault();var r=svg.getBoundingClientRect();
  var f=Math.exp(ev.deltaY*0.0015),mx=vb.x+(ev.clientX-r.left)/r.width*vb.w,my=vb.y+(ev.clientY-r.top)/r.height*vb.h;
  vb.w*=f;vb.h*=f;vb.x=mx-(ev.clientX-r.left)/r.width*vb.w;vb.y=my-(ev.clientY-r.top)/r.height*vb.h;setVB();},{passive:false});
svg.addEventListener('mousedown',function(ev){drag={x:ev.clientX,y:ev.clientY,vx:vb.x,vy:vb.y};moved=false;});
window.addEventListener('mousemove',function(ev){
  if(drag){var r=svg.getBoundingClientRect(),dx=ev.clientX-drag.x,dy=ev.clientY-drag.y;
    if(Math.abs(dx)+Math.abs(dy)>3){moved=true;svg.classList.add('drag');}
    vb.x=drag.vx-dx*vb.w/r.width;vb.y=drag.vy-dy*vb.h/r.height;setVB();}
});
window.addEventListener('mouseup',function(){drag=null;svg.classList.remove('drag');});
scene.addEventListener('mouseover',function(ev){var e=ev.target.closest('.nd');if(!e)return;tip.innerHTML=tipFor(e);tip.style.display='block';});
scene.addEventListener('mousemove',function(ev){if(tip.style.display==='block'){
  var x=ev.clientX+14,y=ev.clientY+14;if(x+tip.offsetWidth>innerWidth)x=ev.clientX-tip.offsetWidth-10;
  if(y+tip.offsetHeight>innerHeight)y=ev.clientY-tip.offsetHeight-10;tip.style.left=x+'px';tip.style.top=y+'px';}});
scene.addEventListener('mouseout',function(ev){var e=ev.target.closest('.nd');if(e&&!e.contains(ev.relatedTarget))tip.style.display='none';});
function expand(b){open[b]=1;var shown=0,front=B[b][3].filter(function(x){return x[0]==='b';}).map(function(x){return x[1];});
  shown=B[b][3].length;while(front.length){var extra=0;front.forEach(function(c){extra+=B[c][3].length-1;});
    if(shown+extra>30)break;shown+=extra;front.forEach(function(c){open[c]=1;});
    front=[].concat.apply([],front.map(function(c){return B[c][3].filter(function(x){return x[0]==='b';}).map(function(x){return x[1];});}));}}
svg.addEventListener('click',function(ev){if(moved)return;
  var h=ev.target.closest('.hd');if(h){var hb=+h.getAttribute('data-hb');
    (function close(b){delete open[b];B[b][3].forEach(function(x){if(x[0]==='b')close(x[1]);});})(hb);relayout();return;}
  var e=ev.target.closest('.nd');if(!e){select(null);return;}
  var b=e.getAttribute('data-b');if(b!==null){tip.style.display='none';expand(+b);relayout();return;}
  var n=N[+e.getAttribute('data-n')];select(n[4].length?n[4][0]:(n[5].length?n[5][0]:null));});
document.getElementById('groups').addEventListener('click',function(ev){var r=ev.target.closest('tr.grow');if(r)select(+r.getAttribute('data-g'));});
document.getElementById('fit').onclick=function(){fit(true);};
document.getElementById('openall').onclick=function(){B.forEach(function(b,i){open[i]=1;});render();fit(false);};
document.getElementById('closeall').onclick=function(){open={0:1};render();fit(true);};
var t0=performance.now();render();fit(false);
document.body.setAttribute('data-render-ms',String(Math.round(performance.now()-t0)));
document.body.setAttribute('data-rendered',String(scene.querySelectorAll('.nd').length));
})();
